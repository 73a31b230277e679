package brokertest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Required reports whether missing brokers fail tests instead of skipping them.
func Required() bool { return os.Getenv("CELERITY_REQUIRE_BROKERS") == "1" }

// Unavailable skips t, or fails it when brokers are required, with why.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if Required() {
		t.Fatalf("CELERITY_REQUIRE_BROKERS=1 but %s", why)
	}
	t.Skipf("skipping: %s (set CELERITY_REQUIRE_BROKERS=1 to make this fatal)", why)
}

// RedisURL returns the Redis server URL for tests (CELERITY_TEST_REDIS_URL,
// default redis://127.0.0.1:6379/0) after checking that it accepts TCP
// connections. Tests must still isolate themselves with Prefix or their own
// DB number.
func RedisURL(t testing.TB) string {
	t.Helper()
	return reachable(t, "CELERITY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0", "6379")
}

// AMQPURL returns the RabbitMQ URL for tests (CELERITY_TEST_AMQP_URL,
// default amqp://guest:guest@127.0.0.1:5672/) after checking that it accepts
// TCP connections.
func AMQPURL(t testing.TB) string {
	t.Helper()
	return reachable(t, "CELERITY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", "5672")
}

func reachable(t testing.TB, env, def, port string) string {
	t.Helper()
	raw := os.Getenv(env)
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s=%q: %v", env, raw, err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), port)
	}
	conn, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		Unavailable(t, "no server at "+host+" ("+env+"): "+err.Error())
		return ""
	}
	conn.Close()
	return raw
}

// randomHex returns 8 random hex digits.
func randomHex() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// Prefix returns a key/queue-name prefix unique to this test run, such as
// "ct-TestFoo-1a2b3c4d-", for tests that share a broker.
func Prefix(t testing.TB) string {
	t.Helper()
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return "ct-" + name + "-" + randomHex() + "-"
}

// Python is the interpreter the Debian python3-celery package installs for.
const Python = "/usr/bin/python3"

// Celery returns the path of the shared interop scripts directory
// (../shared/interop beside the repository) after checking that Python
// Celery, redis-py and msgpack import. It skips or fails like RedisURL.
func Celery(t testing.TB) string {
	t.Helper()
	dir := InteropDir()
	if _, err := os.Stat(filepath.Join(dir, "py_app.py")); err != nil {
		Unavailable(t, "interop scripts not found at "+dir)
		return ""
	}
	out, err := exec.Command(Python, "-c", "import celery, redis, msgpack; print(celery.__version__)").CombinedOutput()
	if err != nil {
		Unavailable(t, "Python Celery is not importable by "+Python+": "+strings.TrimSpace(string(out)))
		return ""
	}
	return dir
}

// InteropDir returns the absolute path of ../shared/interop relative to the
// repository root (CELERITY_INTEROP_DIR overrides it).
func InteropDir() string {
	if d := os.Getenv("CELERITY_INTEROP_DIR"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "..", "shared", "interop")
}

// RepoRoot returns the repository root, found from this source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}
