#!/usr/bin/env node
// The featureflow CLI. Sources are TypeScript; tsx compiles them on the fly.
import { register } from 'tsx/esm/api';

register();
const { cli } = await import('../index.ts');
process.exitCode = await cli(process.argv);
