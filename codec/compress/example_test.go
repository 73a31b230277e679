package compress_test

import (
	"errors"
	"fmt"

	"github.com/celerity-go/celerity/codec/compress"
)

func Example() {
	body := []byte(`[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`)

	// A producer configured with Celery's name for the compressor...
	c, ok := compress.Lookup("gzip")
	if !ok {
		panic("no such compressor")
	}
	wire, err := c.Append(nil, body)
	if err != nil {
		panic(err)
	}
	fmt.Printf("header compression: %s, body starts % x (zlib)\n", c.Mime, wire[:2])

	// ...and a consumer that finds it by the message's "compression" header.
	d, _ := compress.Lookup("application/x-gzip")
	out, err := d.Decompress(nil, wire, 1<<20)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out) == string(body))

	// A body that inflates past the limit is refused, not materialised.
	bomb, _ := c.Append(nil, make([]byte, 10<<20))
	_, err = d.Decompress(nil, bomb, 1<<20)
	fmt.Println(errors.Is(err, compress.ErrTooLarge))
	// Output:
	// header compression: application/x-gzip, body starts 78 9c (zlib)
	// true
	// true
}
