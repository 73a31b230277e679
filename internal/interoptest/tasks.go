package interoptest

import (
	"context"
	"errors"
	"fmt"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine"
)

// RegisterTasks registers in Go the tasks of the shared Python interop app
// (../shared/interop/py_app.py: interop.add, mul, xsum, fail, sleep, echo)
// plus interop.retry, so that Go workers answer what Python clients send.
// seen, if not nil, is called with each task run.
func RegisterTasks(app *engine.App, seen func(t *engine.Task)) {
	note := func(t *engine.Task) {
		if seen != nil {
			seen(t)
		}
	}
	arith := func(name string, mul bool) {
		engine.RegisterRaw(app, name, func(ctx context.Context, t *engine.Task) error {
			note(t)
			var args []json.Number
			if err := json.Unmarshal(t.Args(), &args); err != nil || len(args) != 2 {
				return fmt.Errorf("%s wants [x, y], got %s", name, t.Args())
			}
			v, err := number(args[0], args[1], mul)
			if err != nil {
				return err
			}
			t.Return([]byte(v))
			return nil
		})
	}
	arith("interop.add", false)
	arith("interop.mul", true)
	engine.RegisterRaw(app, "interop.xsum", func(ctx context.Context, t *engine.Task) error {
		note(t)
		var args [][]json.Number
		if err := json.Unmarshal(t.Args(), &args); err != nil || len(args) != 1 {
			return fmt.Errorf("interop.xsum wants [[numbers]], got %s", t.Args())
		}
		sum := json.Number("0")
		for _, x := range args[0] {
			var err error
			if sum, err = number(sum, x, false); err != nil {
				return err
			}
		}
		t.Return([]byte(sum))
		return nil
	})
	engine.RegisterRaw(app, "interop.fail", func(ctx context.Context, t *engine.Task) error {
		note(t)
		var args []any
		json.Unmarshal(t.Args(), &args)
		msg := "interop failure"
		if len(args) > 0 {
			msg = fmt.Sprint(args[0])
		}
		return &engine.TaskError{Type: "ValueError", Module: "builtins", Args: []any{msg}}
	})
	engine.RegisterRaw(app, "interop.sleep", func(ctx context.Context, t *engine.Task) error {
		note(t)
		var args []json.Number
		if err := json.Unmarshal(t.Args(), &args); err != nil || len(args) != 1 {
			return fmt.Errorf("interop.sleep wants [seconds], got %s", t.Args())
		}
		s, _ := args[0].Float64()
		select {
		case <-time.After(time.Duration(s * float64(time.Second))):
		case <-ctx.Done():
			return ctx.Err()
		}
		t.Return([]byte(args[0]))
		return nil
	})
	engine.RegisterRaw(app, "interop.echo", func(ctx context.Context, t *engine.Task) error {
		note(t)
		t.Return([]byte(`{"args": ` + string(t.Args()) + `, "kwargs": ` + string(t.Kwargs()) + `}`))
		return nil
	})
	engine.RegisterRaw(app, "interop.retry", func(ctx context.Context, t *engine.Task) error {
		note(t)
		var args []int
		if err := json.Unmarshal(t.Args(), &args); err != nil || len(args) != 1 {
			return fmt.Errorf("interop.retry wants [times], got %s", t.Args())
		}
		if t.Retries < args[0] {
			return t.Retry(errors.New("again"), 100*time.Millisecond)
		}
		return t.ReturnValue(t.Retries)
	})
}

// number adds or multiplies two JSON numbers, exactly for integers.
func number(x, y json.Number, mul bool) (json.Number, error) {
	if a, err := x.Int64(); err == nil {
		if b, err := y.Int64(); err == nil {
			if mul {
				return json.Number(fmt.Sprint(a * b)), nil
			}
			return json.Number(fmt.Sprint(a + b)), nil
		}
	}
	a, err1 := x.Float64()
	b, err2 := y.Float64()
	if err := errors.Join(err1, err2); err != nil {
		return "", err
	}
	if mul {
		return json.Number(fmt.Sprint(a * b)), nil
	}
	return json.Number(fmt.Sprint(a + b)), nil
}
