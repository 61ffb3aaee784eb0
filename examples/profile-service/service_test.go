package main

import (
	"slices"
	"testing"
	"time"
)

// A session is active on each route it used within the window, and forgotten after it.
func TestSessionsActiveWithinTheWindow(t *testing.T) {
	s := newSessions()
	start := time.Unix(1_700_000_000, 0)
	s.seen("/problems/{topic}", "a", start)
	s.seen("/problems/{topic}", "b", start.Add(3*time.Minute))
	s.seen("/answers/{topic}", "a", start.Add(time.Minute))

	got := s.active(start.Add(4 * time.Minute))
	if got["/problems/{topic}"] != 2 || got["/answers/{topic}"] != 1 {
		t.Fatalf("at 4m: %v", got)
	}
	got = s.active(start.Add(7 * time.Minute))
	if got["/problems/{topic}"] != 1 || got["/answers/{topic}"] != 0 {
		t.Fatalf("at 7m: %v", got)
	}
}

func TestFactor(t *testing.T) {
	if got := factor(2 * 2 * 3 * 97); !slices.Equal(got, []int{2, 2, 3, 97}) {
		t.Fatalf("factor: %v", got)
	}
}
