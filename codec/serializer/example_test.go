package serializer_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/celerity-go/celerity/codec/serializer"
)

func Example() {
	// A producer encodes a body with the configured task_serializer...
	s, _ := serializer.ByName("json")
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	body, err := s.Append(nil, []any{[]any{2, 3.0, when}, map[string]any{}, nil})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s %s\n", s.ContentType, body)

	// ...and a consumer checks the content type against accept_content
	// before it decodes.
	accept := serializer.DefaultAccept // Celery's ["json"]
	if err := accept.Check([]byte("application/json")); err != nil {
		panic(err)
	}
	var decoded []any
	if err := s.Decode(body, &decoded); err != nil {
		panic(err)
	}
	fmt.Println(decoded[0])

	err = accept.Check([]byte("application/x-msgpack"))
	fmt.Println(errors.Is(err, serializer.ErrContentDisallowed))
	// Output:
	// application/json [[2,3.0,"2024-01-02T03:04:05Z"],{},null]
	// [2 3 2024-01-02T03:04:05Z]
	// true
}

func ExampleSerializer_ToJSON() {
	// A msgpack body from a Python producer, seen as JSON: bytes that are
	// UTF-8 become strings, integers stay exact.
	body := []byte("\x92\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xc4\x03caf")
	js, err := serializer.Msgpack.ToJSON(nil, body)
	fmt.Println(string(js), err)
	// Output:
	// [18446744073709551615,"caf"] <nil>
}

func ExampleAccept() {
	accept, err := serializer.NewAccept("json", "msgpack")
	if err != nil {
		panic(err)
	}
	for _, ct := range []string{"application/json", "application/x-msgpack", "application/x-yaml", "application/data"} {
		fmt.Println(ct, accept.Check([]byte(ct)) == nil)
	}
	_, err = serializer.NewAccept("pickle")
	fmt.Println(errors.Is(err, serializer.ErrContentDisallowed))
	// Output:
	// application/json true
	// application/x-msgpack true
	// application/x-yaml false
	// application/data true
	// true
}
