// The embedded demo (two simulated pools, a scheduled job running several cycles) is not built yet.
process.stderr.write(
  'xcr demo: not available yet — it needs the XAPI simulator, the replication core and the local runner.\n',
);
process.exitCode = 1;
