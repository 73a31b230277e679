package redis

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url      string
		addr     string
		db       int
		user     string
		password string
		tls      bool
		insecure bool
		socket   bool
		check    func(t *testing.T, c *config)
	}{
		{url: "redis://", addr: "127.0.0.1:6379"},
		{url: "redis://localhost", addr: "localhost:6379"},
		{url: "redis://127.0.0.1:6380/3", addr: "127.0.0.1:6380", db: 3},
		{url: "redis://:s3cr%40t@host:6379/0", addr: "host:6379", password: "s3cr@t"},
		{url: "redis://bob:pw@host/", addr: "host:6379", user: "bob", password: "pw"},
		{url: "redis://host/5?db=7", addr: "host:6379", db: 7},
		{url: "redis://[::1]:7000/1", addr: "[::1]:7000", db: 1},
		{url: "rediss://host:6380/2", addr: "host:6380", db: 2, tls: true},
		{url: "rediss://host/0?ssl_cert_reqs=CERT_NONE", addr: "host:6379", tls: true, insecure: true},
		{url: "rediss://host/0?ssl_cert_reqs=required", addr: "host:6379", tls: true},
		{url: "redis+socket:///run/redis/redis.sock?virtual_host=4", addr: "/run/redis/redis.sock", db: 4, socket: true},
		{url: "socket:///tmp/r.sock", addr: "/tmp/r.sock", socket: true},
		{url: "unix:///tmp/r.sock?db=2", addr: "/tmp/r.sock", db: 2, socket: true},
		{url: "redis://h/0?visibility_timeout=60&global_keyprefix=app1:&priority_steps=0,5&queue_order_strategy=sorted",
			addr: "h:6379", check: func(t *testing.T, c *config) {
				if c.visibilityTimeout != time.Minute || c.keyPrefix != "app1:" ||
					!slices.Equal(c.prioritySteps, []int{0, 5}) || c.queueOrder != "sorted" {
					t.Errorf("options not applied: %+v", c)
				}
			}},
		{url: "redis://h/0?result_expires=10&socket_timeout=5&max_connections=3", addr: "h:6379",
			check: func(t *testing.T, c *config) {
				if c.resultExpires != 10*time.Second {
					t.Errorf("result_expires = %v", c.resultExpires)
				}
			}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			c := defaultConfig()
			if err := parseURL(tc.url, c); err != nil {
				t.Fatal(err)
			}
			if got := c.client.InitAddress[0]; got != tc.addr {
				t.Errorf("addr %q, want %q", got, tc.addr)
			}
			if c.db != tc.db || c.client.Username != tc.user || c.client.Password != tc.password {
				t.Errorf("db/user/password = %d %q %q, want %d %q %q", c.db, c.client.Username, c.client.Password, tc.db, tc.user, tc.password)
			}
			if (c.client.TLSConfig != nil) != tc.tls || (tc.tls && c.client.TLSConfig.InsecureSkipVerify != tc.insecure) {
				t.Errorf("tls = %+v, want tls=%v insecure=%v", c.client.TLSConfig, tc.tls, tc.insecure)
			}
			if (c.client.DialCtxFn != nil) != tc.socket {
				t.Errorf("unix socket dialer = %v, want %v", c.client.DialCtxFn != nil, tc.socket)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want error
	}{
		{"amqp://guest@host//", ErrBadURL},
		{"redis://host/notanumber", ErrBadURL},
		{"redis://host:99999/0", ErrBadURL},
		{"redis://host/0?db=-1", ErrBadURL},
		{"redis://host/0?ssl_cert_reqs=none", ErrBadURL}, // TLS parameter without rediss
		{"rediss://host/0?ssl_cert_reqs=maybe", ErrBadURL},
		{"rediss://host/0?ssl_ca_certs=/nonexistent/ca.pem", ErrBadURL},
		{"redis+socket://", ErrBadURL},
		{"redis://host/0?visibility_timeout=soon", ErrBadOption},
		{"redis://host/0?visibility_timeout=0", ErrBadOption},
		{"redis://host/0?priority_steps=3,1", ErrBadOption},
		{"redis://host/0?priority_steps=0,10", ErrBadOption},
		{"redis://host/0?queue_order_strategy=random", ErrBadOption},
		{"redis://host/0?no_such_option=1", ErrBadOption},
		{"redis://host/0?unacked_key=", ErrBadOption},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			err := parseURL(tc.url, defaultConfig())
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTransportOptions(t *testing.T) {
	t.Parallel()
	c := defaultConfig()
	err := WithTransportOptions(map[string]any{
		"visibility_timeout": 43200.0, "priority_steps": []any{0.0, 1.0, 2.0, 9.0},
		"unacked_restore_limit": 100.0, "result_expires": nil, "fanout_prefix": true,
		"unacked_key": "my_unacked",
	})(c)
	if err != nil {
		t.Fatal(err)
	}
	if c.visibilityTimeout != 12*time.Hour || !slices.Equal(c.prioritySteps, []int{0, 1, 2, 9}) ||
		c.unackedRestoreLimit != 100 || c.resultExpires != 0 || c.unackedKey != "my_unacked" {
		t.Fatalf("options not applied: %+v", c)
	}
	if err := WithTransportOptions(map[string]any{"visibility_timeout": "x"})(c); !errors.Is(err, ErrBadOption) {
		t.Fatalf("bad value: err = %v", err)
	}
}

func TestBucket(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		steps []int
		prio  uint8
		want  int
	}{
		{[]int{0, 3, 6, 9}, 0, 0}, {[]int{0, 3, 6, 9}, 2, 0}, {[]int{0, 3, 6, 9}, 3, 1},
		{[]int{0, 3, 6, 9}, 8, 2}, {[]int{0, 3, 6, 9}, 9, 3}, {[]int{0, 3, 6, 9}, 200, 3},
		{[]int{0}, 9, 0},
		{[]int{2, 5}, 0, 1}, // kombu: bisect gives -1, Python's steps[-1] is the last step
		{[]int{2, 5}, 3, 0},
	} {
		b := &Broker{cfg: &config{prioritySteps: tc.steps}}
		if got := b.bucket(tc.prio); got != tc.want {
			t.Errorf("steps %v priority %d: bucket %d, want %d", tc.steps, tc.prio, got, tc.want)
		}
	}
}

func TestDeliveryTag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ env, want string }{
		{`{"properties": {"delivery_tag": "abc"}}`, "abc"},
		{`{"properties":{"delivery_tag":"abc"}}`, "abc"},
		{"{\"delivery_tag\"\t:\n \"x-1\"}", "x-1"},
		{`{"delivery_tag": "a\"b", "properties": {"delivery_tag": "real"}}`, "real"},
		{`{"headers": {"note": "\"delivery_tag\": \"fake\""}, "properties": {"delivery_tag": "t"}}`, "t"},
		{`{"delivery_tag": ""}`, ""},
		{`{"delivery_tag": 5}`, ""},
		{`not json "delivery_tag": "still"`, "still"},
		{`{"body": "x"}`, ""},
		{`{"delivery_tag": "unterminated`, ""},
		// Fast path: kombu's layout, tag last.
		{`{"headers": {"delivery_tag": "first"}, "properties": {"body_encoding": "base64", "delivery_tag": "last"}}`, "last"},
		{`{"properties": {"delivery_tag": "a\"b"}}`, ""},
		{`{"properties": {"delivery_tag": ""}}`, ""},
		{`"delivery_tag": "}}`, ""},
	} {
		if got := deliveryTag(tc.env); got != tc.want {
			t.Errorf("deliveryTag(%q) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestTopicMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, key string
		want         bool
	}{
		{"a.b", "a.b", true}, {"a.*", "a.b", true}, {"a.*", "a.b.c", false},
		{"a.#", "a", true}, {"a.#", "a.b.c", true}, {"#", "anything.at.all", true},
		{"*.b", "a.b", true}, {"*.b", "b", false}, {"a.#.z", "a.z", true}, {"a.#.z", "a.x.y.z", true},
	} {
		if got := topicMatch(tc.pattern, tc.key); got != tc.want {
			t.Errorf("topicMatch(%q, %q) = %v", tc.pattern, tc.key, got)
		}
	}
}
