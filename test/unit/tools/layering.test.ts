import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkLayering, rules } from '../../../tools/deps.js';

/**
 * One import per row, each between files of its own (so the rows form no cycle together); `rule`
 * is the rule the import must break, or null when the arrows allow it.
 */
const imports: { from: string; to: string; rule: string | null }[] = [
  { from: 'functions/xapi/a1.ts', to: 'cli/a1.ts', rule: 'functions-not-into-outer' },
  { from: 'functions/vhd/a2.ts', to: 'functions/xapi/a2.ts', rule: 'vhd-is-the-bottom' },
  { from: 'functions/config/a3.ts', to: 'functions/replication/a3.ts', rule: 'leaves-import-no-layer' },
  { from: 'functions/retry/a4.ts', to: 'functions/xapi/a4.ts', rule: 'leaves-import-no-layer' },
  { from: 'functions/nbd/a5.ts', to: 'functions/replication/a5.ts', rule: 'adapters-not-upward' },
  { from: 'functions/lease/a6.ts', to: 'functions/handlers/a6.ts', rule: 'adapters-not-upward' },
  { from: 'functions/nbd/a7.ts', to: 'functions/xapi/a7.ts', rule: 'adapters-independent' },
  { from: 'functions/replication/a8.ts', to: 'functions/handlers/a8.ts', rule: 'core-not-into-handlers' },
  { from: 'sim/a9.ts', to: 'functions/xapi/a9.ts', rule: 'sim-only-codecs' },
  { from: 'functions/qcow2/a14.ts', to: 'functions/vhd/a14.ts', rule: 'qcow2-is-the-bottom' },
  { from: 'functions/runstore/a15.ts', to: 'functions/replication/a15.ts', rule: 'adapters-not-upward' },
  { from: 'infra/a10.ts', to: 'functions/replication/a10.ts', rule: 'infra-only-config-contract-names' },
  { from: 'cli/a11.ts', to: 'test/support/a11.ts', rule: 'cli-not-into-tests' },
  { from: 'test/faults/a12.ts', to: 'bench/a12.ts', rule: 'tests-not-into-bench' },
  { from: 'bench/a13.ts', to: 'test/unit/a13.ts', rule: 'bench-only-test-support' },
  { from: 'sim/cycle-a.ts', to: 'sim/cycle-b.ts', rule: 'no-circular' },
  // What the arrows allow.
  { from: 'functions/handlers/b1.ts', to: 'functions/replication/b1.ts', rule: null },
  { from: 'functions/handlers/b2.ts', to: 'functions/lease/b2.ts', rule: null },
  { from: 'functions/replication/b3.ts', to: 'functions/xapi/b3.ts', rule: null },
  { from: 'functions/replication/b4.ts', to: 'functions/config/b4.ts', rule: null },
  { from: 'functions/xapi/b5.ts', to: 'functions/retry/b5.ts', rule: null },
  { from: 'functions/nbd/b6.ts', to: 'functions/vhd/b6.ts', rule: null },
  { from: 'functions/config/b7.ts', to: 'functions/config/b7-load.ts', rule: null },
  { from: 'sim/b8.ts', to: 'functions/vhd/b8.ts', rule: null },
  { from: 'sim/b14.ts', to: 'functions/qcow2/b14.ts', rule: null },
  { from: 'functions/replication/b15.ts', to: 'functions/runstore/b15.ts', rule: null },
  { from: 'infra/b16.ts', to: 'functions/replication/drill/contract.ts', rule: null },
  { from: 'infra/b9.ts', to: 'functions/replication/contract.ts', rule: null },
  { from: 'infra/b10.ts', to: 'functions/handlers/lambda/names.ts', rule: null },
  { from: 'infra/b11.ts', to: 'functions/config/b11.ts', rule: null },
  { from: 'bench/b12.ts', to: 'test/support/b12.ts', rule: null },
  { from: 'test/unit/b13.ts', to: 'test/support/b13.ts', rule: null },
];
/** Closes the cycle of the no-circular row (dependency-cruiser reports a cycle once, at its start). */
const closing = { from: 'sim/cycle-b.ts', to: 'sim/cycle-a.ts' };

const tree = mkdtempSync(join(tmpdir(), 'xcr-layering-'));
afterAll(() => rmSync(tree, { recursive: true, force: true }));

function writeTree(): string[] {
  const files = new Map<string, string[]>();
  for (const { from, to } of [...imports, closing]) {
    files.set(to, files.get(to) ?? []);
    const rel = relative(dirname(from), to).replace(/\.ts$/, '.js');
    files.set(from, [...(files.get(from) ?? []), `import '${rel.startsWith('.') ? rel : `./${rel}`}';`]);
  }
  for (const [file, lines] of files) {
    mkdirSync(join(tree, dirname(file)), { recursive: true });
    writeFileSync(join(tree, file), `${lines.join('\n')}\nexport {};\n`);
  }
  return [...new Set([...files.keys()].map((f) => f.split('/')[0]!))];
}

describe('the layering rules (.dependency-cruiser.cjs)', () => {
  it('a wrong-direction import fails with the name of the rule it breaks; allowed ones pass', async () => {
    const { violations, report } = await checkLayering(writeTree(), tree);
    const found = violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort();
    const expected = imports
      .filter((i) => i.rule)
      .map((i) => `${i.rule}: ${i.from} → ${i.to}`)
      .sort();
    expect(found).toEqual(expected);
    // The message a developer sees names the rule and says why it exists.
    for (const rule of rules.forbidden) {
      expect(report).toContain(`${rule.name}: `);
      expect(report).toContain(rule.comment);
    }
  }, 60_000);

  it('every rule has a comment and is exercised above', () => {
    for (const rule of rules.forbidden) {
      expect(rule.comment?.length).toBeGreaterThan(20);
      expect(imports.some((i) => i.rule === rule.name)).toBe(true);
    }
  });
});
