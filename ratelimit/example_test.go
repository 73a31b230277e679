package ratelimit_test

import (
	"fmt"

	"github.com/celerity-go/celerity/ratelimit"
)

// A worker keeps one Limiter. A rate-limited task is never refused: Reserve
// says how long it must wait, and the worker parks it in a timer until then
// while other task types keep running.
func ExampleLimiter() {
	var limits ratelimit.Limiter
	rate, err := ratelimit.Parse("10/s") // Celery's rate_limit="10/s"
	if err != nil {
		fmt.Println(err)
		return
	}
	limits.Set("tasks.send_email", rate)

	now := ratelimit.Now()
	for range 3 {
		fmt.Println("send_email waits", limits.Reserve("tasks.send_email", now))
	}
	fmt.Println("resize_image waits", limits.Reserve("tasks.resize_image", now))

	// The rate_limit remote-control command changes it at run time.
	limits.Set("tasks.send_email", ratelimit.Unlimited)
	fmt.Println("send_email waits", limits.Reserve("tasks.send_email", now))
	// Output:
	// send_email waits 0s
	// send_email waits 100ms
	// send_email waits 200ms
	// resize_image waits 0s
	// send_email waits 0s
}

func ExampleParse() {
	for _, s := range []string{"100/m", "0.5/s", "1000/h", "10", "", "10/d"} {
		r, err := ratelimit.Parse(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%q: every %v, unlimited=%v\n", s, r.Interval(), r.Unlimited())
	}
	// Output:
	// "100/m": every 600ms, unlimited=false
	// "0.5/s": every 2s, unlimited=false
	// "1000/h": every 3.6s, unlimited=false
	// "10": every 100ms, unlimited=false
	// "": every 0s, unlimited=true
	// ratelimit: "10/d": invalid rate limit: unknown unit "d" (want s, m or h)
}
