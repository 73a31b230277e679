package engine

import (
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/celerity-go/celerity/codec"
)

// TestTaskResetSetsEveryField: an executor reuses one Task for every run
// and reset assigns its fields one by one (a composite literal was built
// on the stack and copied: 12 of the 210 ns per task of
// BenchmarkEngineMemoryNoop run on one processor). Whatever an earlier run
// left in any field, including fields added to Task later, reset must give
// the Task that resetting a zero one gives.
func TestTaskResetSetsEveryField(t *testing.T) {
	app := MustNew(Config{Hostname: "w1@host"})
	defer app.Close()
	w := &Worker{app: app}
	def := &taskDef{name: "tasks.reset"}
	for _, m := range []*codec.Message{
		{Task: []byte("tasks.reset"), ID: []byte("id-1")},
		junkMessage(t),
	} {
		want := new(Task)
		want.reset(w, def, m)
		got := junkTask(t)
		got.reset(w, def, m)
		if len(got.result) != 0 {
			t.Errorf("result = %q after reset, want empty", got.result)
		}
		got.result = nil // its storage is kept, on purpose
		if !reflect.DeepEqual(got, want) {
			t.Errorf("reset over an earlier run's Task:\n got %+v\nwant %+v", got, want)
		}
	}
}

// junkTask returns a Task with every field, exported or not, set to a
// value reset does not produce.
func junkTask(t *testing.T) *Task {
	t.Helper()
	task := new(Task)
	v := reflect.ValueOf(task).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem() // settable, exported or not
		switch f.Kind() {
		case reflect.String:
			f.SetString("junk")
		case reflect.Int, reflect.Int64:
			f.SetInt(77)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]byte("junk")))
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Struct:
			f.Set(reflect.ValueOf(time.Unix(1234567, 0)))
		default:
			t.Fatalf("junkTask: no junk for field %s of kind %s", v.Type().Field(i).Name, f.Kind())
		}
	}
	return task
}
