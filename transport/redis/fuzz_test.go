package redis

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// tagPattern is the Lua pattern '"delivery_tag"%s*:%s*"([^"\\]*)"' as a Go
// regexp (leftmost match, like string.match).
var tagPattern = regexp.MustCompile(`"delivery_tag"[ \t\n\v\f\r]*:[ \t\n\v\f\r]*"([^"\\]*)"`)

func FuzzDeliveryTag(f *testing.F) {
	for _, s := range []string{
		`{"properties": {"body_encoding": "base64", "delivery_tag": "0c3e1a52-8f8e-4b7a-a5f4-2f9c3d7e6b1a"}}`,
		`{"delivery_tag":"x"}`,
		`{"a": "\"delivery_tag\": \"no\"", "delivery_tag" : "yes"}`,
		`"delivery_tag": "}}`,
		``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, env string) {
		// Reference for the slow path: the Lua pattern as a regexp.
		want := ""
		if m := tagPattern.FindStringSubmatch(env); m != nil {
			want = m[1]
		}
		if p := deliveryTagPattern(env); p != want {
			t.Fatalf("deliveryTagPattern(%q) = %q, want %q", env, p, want)
		}
		// Reference for the fast path, as specified in deliveryTag.
		const fast = `"delivery_tag": "`
		if strings.HasSuffix(env, `"}}`) {
			tail := env[max(0, len(env)-81):]
			if i := strings.Index(tail, fast); i >= 0 {
				rest := tail[i+len(fast):]
				if len(rest) >= 3 {
					if tag := rest[:len(rest)-3]; tag != "" && !strings.ContainsAny(tag, `"\`) {
						want = tag
					}
				}
			}
		}
		if got := deliveryTag(env); got != want {
			t.Fatalf("deliveryTag(%q) = %q, want %q", env, got, want)
		}
	})
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://:pw@127.0.0.1:6379/3?visibility_timeout=60",
		"rediss://h/0?ssl_cert_reqs=none",
		"redis+socket:///tmp/r.sock?virtual_host=2",
		"redis://h/0?priority_steps=0,3,6,9&queue_order_strategy=sorted",
		"amqp://x", "redis://[::1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		err := parseURL(raw, defaultConfig())
		if err != nil && !errors.Is(err, ErrBadURL) && !errors.Is(err, ErrBadOption) {
			t.Fatalf("parseURL(%q): error %v wraps neither ErrBadURL nor ErrBadOption", raw, err)
		}
	})
}
