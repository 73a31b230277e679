package beat

import (
	"testing"
	"time"
)

var benchCrons = []struct{ name, line string }{
	{"every-minute", "* * * * *"},
	{"workdays", "*/15 9-17 * * mon-fri"},
	{"first-monday", "0 6 1-7 * mon"},
	{"feb29-monday", "0 0 29 2 mon"}, // sparse: decades between runs
}

var sinkTime time.Time

func BenchmarkCrontabNext(b *testing.B) {
	for _, zone := range []string{"UTC", "Europe/Berlin"} {
		loc := mustLoc(b, zone)
		for _, bc := range benchCrons {
			b.Run(zone+"/"+bc.name, func(b *testing.B) {
				c := mustCron(b, bc.line, loc)
				after := time.Date(2024, 5, 10, 10, 7, 30, 0, time.UTC)
				b.ReportAllocs()
				for b.Loop() {
					sinkTime = c.Next(after)
				}
			})
		}
	}
}

func BenchmarkCrontabIsDue(b *testing.B) {
	c := mustCron(b, "*/15 9-17 * * mon-fri", mustLoc(b, "Europe/Berlin"))
	last := time.Date(2024, 5, 10, 10, 0, 0, 0, time.UTC)
	for _, bc := range []struct {
		name string
		now  time.Time
	}{
		{"not-due", last.Add(7 * time.Minute)},
		{"due", last.Add(16 * time.Minute)}, // computes the run after now as well
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.IsDue(last, bc.now)
			}
		})
	}
}

func BenchmarkIntervalIsDue(b *testing.B) {
	s, err := NewInterval(10 * time.Second)
	if err != nil {
		b.Fatal(err)
	}
	last := time.Date(2024, 5, 10, 10, 0, 0, 0, time.UTC)
	now := last.Add(3 * time.Second)
	b.ReportAllocs()
	for b.Loop() {
		s.IsDue(last, now)
	}
}

func BenchmarkParseCrontab(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCrontab("1,13,30-45,50-59/2", "0,8-17/2", "mon-fri", "1-7,15-21", "*/3"); err != nil {
			b.Fatal(err)
		}
	}
}
