import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';

// The README's TypeScript snippets are code users copy: each is type-checked, as a module of a user
// project with strict settings, against the built package (so they cannot rot).

const run = promisify(execFile);
const readme = readFileSync(resolve('README.md'), 'utf8');
const snippets = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);

describe('README', () => {
  test('has TypeScript snippets', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(3);
  });

  test('every TypeScript snippet type-checks against the package', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-readme-'));
    mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true });
    symlinkSync(resolve('.'), join(dir, 'node_modules', 'featureflow'), 'dir');
    symlinkSync(resolve('node_modules/@types/node'), join(dir, 'node_modules', '@types', 'node'), 'dir');
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'readme-snippets', type: 'module', private: true }),
    );
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          target: 'es2022',
          strict: true,
          noUncheckedIndexedAccess: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
        },
        include: ['*.ts'],
      }),
    );
    snippets.forEach((code, i) => {
      writeFileSync(
        join(dir, `snippet-${i + 1}.ts`),
        code.includes('export') || code.includes('import') ? code : `${code}\nexport {};\n`,
      );
    });
    const result = await run(process.execPath, [resolve('node_modules/typescript/bin/tsc'), '-p', dir]).then(
      () => '',
      (e: { stdout: string }) => e.stdout,
    );
    expect(result).toBe('');
  });
});
