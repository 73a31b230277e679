package brokertest

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// Vhost is a RabbitMQ vhost a test package creates once, with rabbitmqctl,
// for all its tests, and deletes in its TestMain with Delete. Where
// rabbitmqctl is missing or CELERITY_TEST_AMQP_URL is set, URL returns the
// configured URL unchanged and the tests isolate themselves by queue names.
// The zero value needs only Prefix; it is safe for concurrent use.
type Vhost struct {
	// Prefix starts the vhost's name, e.g. "celerity-amqp-test-".
	Prefix string

	once      sync.Once
	url, name string
	err       error
}

// URL returns the AMQP URL of the package's vhost, creating it on first
// use (skipping or failing like AMQPURL when RabbitMQ is absent).
func (v *Vhost) URL(t testing.TB) string {
	t.Helper()
	base := AMQPURL(t)
	v.once.Do(func() {
		v.url = base
		if os.Getenv("CELERITY_TEST_AMQP_URL") != "" {
			return
		}
		if _, err := exec.LookPath("rabbitmqctl"); err != nil {
			return
		}
		name := v.Prefix + randomHex()
		if out, err := exec.Command("rabbitmqctl", "add_vhost", name).CombinedOutput(); err != nil {
			v.err = fmt.Errorf("rabbitmqctl add_vhost: %v: %s", err, out)
			return
		}
		v.name = name
		if out, err := exec.Command("rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*").CombinedOutput(); err != nil {
			v.err = fmt.Errorf("rabbitmqctl set_permissions: %v: %s", err, out)
			return
		}
		u, _ := url.Parse(base)
		u.Path = "/" + name
		v.url = u.String()
	})
	if v.err != nil {
		t.Fatal(v.err)
	}
	return v.url
}

// Created reports whether URL created a vhost of its own.
func (v *Vhost) Created() bool { return v.name != "" }

// Delete removes the vhost URL created, if any. Call it from TestMain
// after m.Run.
func (v *Vhost) Delete() {
	if v.name != "" {
		exec.Command("rabbitmqctl", "delete_vhost", v.name).Run()
	}
}
