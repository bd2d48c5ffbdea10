package testenv

import (
	"strings"
	"testing"
	"time"
)

// StepLineTimes returns the times (Unix seconds, local time as the scripts
// write them) of the lines of the operator's step log at path that hold
// marker, oldest first, read the simple way: the "YYYY-MM-DD HH:MM:SS"
// before the " - " that precedes marker. It is the tests' check on the
// exporter's parser, so it shares no code with it. A log without such a
// line fails the test.
func StepLineTimes(t testing.TB, path, marker string) []float64 {
	t.Helper()
	var out []float64
	for _, line := range strings.Split(ReadFile(t, path), "\n") {
		i := strings.Index(line, marker)
		if i < 0 {
			continue
		}
		if at := strings.LastIndex(line[:i], " - "); at >= 19 {
			tm, err := time.ParseInLocation("2006-01-02 15:04:05", line[at-19:at], time.Local)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, float64(tm.Unix()))
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no step line with %q", path, marker)
	}
	return out
}

// StepLineTime is the time of the first line StepLineTimes finds.
func StepLineTime(t testing.TB, path, marker string) float64 {
	t.Helper()
	return StepLineTimes(t, path, marker)[0]
}
