package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := Config{}.withDefaults()
	if c.TaskDefaultQueue != "celery" || c.TaskSerializer != "json" || c.WorkerPrefetchMultiplier != 4 ||
		c.TaskMaxRetries != 3 || c.TaskDefaultRetryDelay != 180*time.Second || c.ResultExpires != 24*time.Hour ||
		c.WorkerPool != "goroutine" || !strings.HasPrefix(c.Hostname, "celerity@") || c.AcceptContent[0] != "json" {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidationNamesTheSetting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{TaskSerializer: "pickle"}, "task_serializer"},
		{Config{TaskDefaultPriority: 12}, "task_default_priority"},
		{Config{WorkerConcurrency: -1}, "worker_concurrency"},
		{Config{WorkerPool: "threads"}, "worker_pool"},
		{Config{WorkerMaxMemoryPerChild: -1}, "worker_max_memory_per_child"},
		{Config{TaskTimeLimit: -time.Second}, "task_time_limit"},
		{Config{Timezone: "Mars/Olympus"}, "timezone"},
		{Config{TaskRoutes: []Route{{Pattern: "x"}}}, "task_routes"},
		{Config{TaskMaxRetries: -2}, "task_max_retries"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), "config "+tc.want) {
			t.Errorf("%+v: err %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("CELERITY_WORKER_CONCURRENCY", "8")
	t.Setenv("CELERITY_TASK_ACKS_LATE", "true")
	t.Setenv("CELERITY_ACCEPT_CONTENT", "json, msgpack")
	t.Setenv("CELERITY_TASK_TIME_LIMIT", "30")
	t.Setenv("CELERITY_TASK_SOFT_TIME_LIMIT", "1m30s")
	t.Setenv("CELERITY_BROKER_URL", "redis://127.0.0.1:6379/3")
	var c Config
	if err := c.LoadEnv(); err != nil {
		t.Fatal(err)
	}
	if c.WorkerConcurrency != 8 || !c.TaskAcksLate || strings.Join(c.AcceptContent, "|") != "json|msgpack" ||
		c.TaskTimeLimit != 30*time.Second || c.TaskSoftTimeLimit != 90*time.Second || c.BrokerURL != "redis://127.0.0.1:6379/3" {
		t.Fatalf("from env: %+v", c)
	}
	t.Setenv("CELERITY_WORKER_PREFETCH_MULTIPLIER", "lots")
	err := c.LoadEnv()
	if err == nil || !strings.Contains(err.Error(), "CELERITY_WORKER_PREFETCH_MULTIPLIER") {
		t.Fatalf("bad env value: %v", err)
	}
}

func TestConfigFromFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	js := filepath.Join(dir, "c.json")
	os.WriteFile(js, []byte(`{"broker_url": "redis://h/1", "task_acks_late": true, "worker_concurrency": 3,
		"result_expires": 3600, "task_routes": [{"pattern": "feed.*", "queue": "feeds"}], "accept_content": ["json", "yaml"]}`), 0o644)
	var c Config
	if err := c.LoadFile(js); err != nil {
		t.Fatal(err)
	}
	if c.BrokerURL != "redis://h/1" || !c.TaskAcksLate || c.WorkerConcurrency != 3 || c.ResultExpires != time.Hour ||
		len(c.TaskRoutes) != 1 || c.TaskRoutes[0].Queue != "feeds" || strings.Join(c.AcceptContent, ",") != "json,yaml" {
		t.Fatalf("from json: %+v", c)
	}
	ym := filepath.Join(dir, "c.yaml")
	os.WriteFile(ym, []byte("task_serializer: msgpack\ntask_default_queue: work\ntask_time_limit: 2.5\n"), 0o644)
	var y Config
	if err := y.LoadFile(ym); err != nil {
		t.Fatal(err)
	}
	if y.TaskSerializer != "msgpack" || y.TaskDefaultQueue != "work" || y.TaskTimeLimit != 2500*time.Millisecond {
		t.Fatalf("from yaml: %+v", y)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"task_ack_late": true}`), 0o644)
	if err := new(Config).LoadFile(bad); err == nil || !strings.Contains(err.Error(), `unknown setting "task_ack_late"`) {
		t.Fatalf("unknown key: %v", err)
	}
	if err := new(Config).LoadFile(filepath.Join(dir, "c.toml")); err == nil {
		t.Fatal("unknown extension accepted")
	}
}
