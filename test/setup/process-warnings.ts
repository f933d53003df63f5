// Node prints every process warning to stderr. A test that expects one listens for 'warning' and asserts it;
// printed as well, it makes a passing run look broken. Here a warning that a test listens for is left to that
// test, and any other is printed as Node prints it, so an unexpected warning stays in sight.
const [printWarning] = process.listeners('warning') // Node's own, added at start-up (none under --no-warnings)

if (printWarning !== undefined) {
  process.removeListener('warning', printWarning)
  process.on('warning', function printUnexpected(warning: Error) {
    if (process.listenerCount('warning') === 1) printWarning.call(process, warning)
  })
}
