//go:build race

package esp

// concurrentCalls is smaller under the race detector, which allows at most
// 8128 live goroutines.
const concurrentCalls = 4000
