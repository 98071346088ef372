//go:build race

package baseline

// raceEnabled: the tests run under the race detector.
const raceEnabled = true
