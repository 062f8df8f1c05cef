//go:build !race

package esp

// concurrentCalls is how many Do calls TestConcurrentCallsUseFewOSThreads
// runs at once.
const concurrentCalls = 10000
