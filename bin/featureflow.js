#!/usr/bin/env node
// The featureflow CLI. Sources are TypeScript; tsx compiles them on the fly with the project's
// tsconfig (inversify's decorators need experimentalDecorators), whatever the working directory.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
const { cli } = await import('../index.ts');
process.exitCode = await cli(process.argv);
