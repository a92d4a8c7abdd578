/**
 * The import rules of the repository, checked by `npm run deps` (tools/deps.ts) in `npm test`.
 *
 *   functions/handlers → functions/replication → {functions/xapi, functions/nbd, functions/lease, functions/runstore}
 *   → functions/{vhd,qcow2}, never upward; functions/config and functions/retry are leaves everybody may use.
 *   sim/ is an independent XAPI implementation: it shares only the VHD and qcow2 codecs with the client side.
 *   infra/ builds the CDK app from the config, the workflow contract and the Lambda entry names.
 *   Shared test helpers live in test/support/, which bench/ may use; nothing in test/ uses bench/.
 *
 * Type-only imports count: a cycle or an upward edge through types couples the modules all the same.
 */
/** The repository's top-level source directories except `dir`. */
const repoOutside = (dir) =>
  `^(${['functions', 'cli', 'infra', 'sim', 'test', 'bench', 'tools'].filter((d) => d !== dir).join('|')})/`;

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles: split the shared part into a module both sides import, or pass a port.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'functions-not-into-outer',
      comment:
        'functions/ is the deployed code: it never imports cli/, infra/, sim/, test/, bench/ or tools/ (they import it).',
      severity: 'error',
      from: { path: '^functions/' },
      to: { path: repoOutside('functions') },
    },
    {
      name: 'vhd-is-the-bottom',
      comment: 'functions/vhd/ is the pure VHD codec: it imports nothing else of the repository.',
      severity: 'error',
      from: { path: '^functions/vhd/' },
      to: { path: '^(functions/(?!vhd/)|cli/|infra/|sim/|test/|bench/|tools/)' },
    },
    {
      name: 'qcow2-is-the-bottom',
      comment: 'functions/qcow2/ is the pure qcow2 codec: it imports nothing else of the repository.',
      severity: 'error',
      from: { path: '^functions/qcow2/' },
      to: { path: '^(functions/(?!qcow2/)|cli/|infra/|sim/|test/|bench/|tools/)' },
    },
    {
      name: 'leaves-import-no-layer',
      comment:
        'functions/config/ and functions/retry/ are leaves used by every layer: they import no other part of the repository.',
      severity: 'error',
      from: { path: '^functions/(config|retry)/' },
      to: { path: '^(functions/|cli/|infra/|sim/|test/|bench/|tools/)', pathNot: '^functions/$1/' },
    },
    {
      name: 'adapters-not-upward',
      comment:
        'functions/xapi, functions/nbd, functions/lease and functions/runstore sit below the core: they never import functions/replication or functions/handlers (the core owns the ports they implement).',
      severity: 'error',
      from: { path: '^functions/(xapi|nbd|lease|runstore)/' },
      to: { path: '^functions/(replication|handlers)/' },
    },
    {
      name: 'adapters-independent',
      comment:
        'functions/xapi, functions/nbd, functions/lease and functions/runstore do not import each other: the core combines them.',
      severity: 'error',
      from: { path: '^functions/(xapi|nbd|lease|runstore)/' },
      to: { path: '^functions/(xapi|nbd|lease|runstore)/', pathNot: '^functions/$1/' },
    },
    {
      name: 'core-not-into-handlers',
      comment:
        'functions/replication/ (the core) never imports functions/handlers/: the handlers are adapters over the core, the contract and ports live in the core.',
      severity: 'error',
      from: { path: '^functions/replication/' },
      to: { path: '^functions/handlers/' },
    },
    {
      name: 'sim-only-codecs',
      comment:
        'sim/ is an independent implementation of XAPI: besides node and npm packages it imports only the pure codecs functions/vhd/ and functions/qcow2/ (never the client it is tested against).',
      severity: 'error',
      from: { path: '^sim/' },
      to: { path: repoOutside('sim'), pathNot: '^functions/(vhd|qcow2)/' },
    },
    {
      name: 'infra-only-config-contract-names',
      comment:
        'infra/ imports functions/config/, the workflow contracts (state and error names, functions/replication/contract.ts, the drill contract functions/replication/drill/contract.ts and the failover contract functions/replication/failover/contract.ts) and the Lambda names (functions/handlers/lambda/names.ts), nothing else of the deployed code; the handler entry points are referenced by path, not imported.',
      severity: 'error',
      from: { path: '^infra/' },
      to: {
        path: repoOutside('infra'),
        pathNot:
          '^functions/(config/|replication/contract\\.ts$|replication/drill/contract\\.ts$|replication/failover/contract\\.ts$|handlers/lambda/names\\.ts$)',
      },
    },
    {
      name: 'cli-not-into-tests',
      comment: 'cli/ is shipped code: it never imports test/, bench/ or tools/.',
      severity: 'error',
      from: { path: '^cli/' },
      to: { path: '^(test|bench|tools)/' },
    },
    {
      name: 'tests-not-into-bench',
      comment:
        'Nothing under test/ imports bench/: helpers both need live in test/support/, which bench/ imports.',
      severity: 'error',
      from: { path: '^test/' },
      to: { path: '^bench/' },
    },
    {
      name: 'bench-only-test-support',
      comment: 'bench/ may import test/support/ only, never a test file or another test directory.',
      severity: 'error',
      from: { path: '^bench/' },
      to: { path: '^test/', pathNot: '^test/support/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|cdk\\.out)/' },
    tsPreCompilationDeps: true,
    combinedDependencies: false,
  },
};
