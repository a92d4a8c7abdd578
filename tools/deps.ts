/**
 * The layering check of `npm test`: runs dependency-cruiser with the repository's rules
 * (.dependency-cruiser.cjs) and prints each violation with the rule's name and why it exists.
 * It calls dependency-cruiser's API because its command line refuses Node 20, which this project
 * supports; the rules and the cruise are the same.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cruise, type IForbiddenRuleType, type IViolation } from 'dependency-cruiser';

const root = join(import.meta.dirname, '..');
export const SOURCE_DIRS = ['functions', 'infra', 'cli', 'sim', 'bench', 'test', 'tools'];

interface RuleConfig {
  forbidden: IForbiddenRuleType[];
  options: Record<string, unknown>;
}
export const rules = createRequire(import.meta.url)(join(root, '.dependency-cruiser.cjs')) as RuleConfig;

export interface LayeringResult {
  violations: IViolation[];
  /** One block per violation: "<rule>: <from> → <to>" and the rule's comment. */
  report: string;
}

/** Cruises `paths` (relative to `baseDir`) under the repository's rules. */
export async function checkLayering(paths: string[], baseDir = root): Promise<LayeringResult> {
  const result = await cruise(paths, {
    ...rules.options,
    baseDir,
    validate: true,
    ruleSet: { forbidden: rules.forbidden },
  } as never);
  if (typeof result.output === 'string')
    throw new Error('dependency-cruiser returned text, expected a result');
  const violations = result.output.summary.violations.filter((v) => v.rule.severity === 'error');
  const comments = new Map(rules.forbidden.map((r) => [r.name, r.comment]));
  const lines = violations.map((v) => {
    const via = v.cycle?.length ? ` (cycle: ${v.cycle.map((c) => c.name).join(' → ')})` : '';
    return `${v.rule.name}: ${v.from} → ${v.to}${via}\n    ${comments.get(v.rule.name) ?? ''}`;
  });
  return { violations, report: lines.join('\n') };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { violations, report } = await checkLayering(SOURCE_DIRS);
  if (violations.length) {
    process.stderr.write(`${report}\n\n${violations.length} import(s) break the layering rules.\n`);
    process.exit(1);
  }
  process.stdout.write('layering: no cycle, no wrong-direction import\n');
}
