package compress

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/celerity-go/celerity/internal/brokertest"
)

// interopScript runs in the real Python: for every mime type it is given it
// decompresses Go's bodies with kombu.compression.decompress and compresses
// the samples with kombu.compression.compress. Mime types kombu did not
// register (brotli, zstd without their modules) come back in "missing".
const interopScript = `
import base64, json, sys
import kombu.compression as c
b64, unb64 = (lambda b: base64.b64encode(b).decode()), base64.b64decode
req = json.load(sys.stdin)
samples = [unb64(s) for s in req["samples"]]
out = {"decoded": {}, "python": {}, "missing": []}
for mime, bodies in req["go"].items():
    if mime not in c.encoders():
        out["missing"].append(mime)
        continue
    out["decoded"][mime] = [b64(c.decompress(unb64(b), mime)) for b in bodies]
    out["python"][mime] = []
    for s in samples:
        enc, ctype = c.compress(s, mime)
        assert ctype == mime, ctype
        out["python"][mime].append(b64(enc))
json.dump(out, sys.stdout)
`

// TestPythonInterop compresses with Go and decompresses with kombu, and the
// reverse, for every codec the Python here has.
func TestPythonInterop(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, brokertest.Python, "-c", "import kombu.compression").CombinedOutput(); err != nil {
		brokertest.Unavailable(t, "kombu is not importable by "+brokertest.Python+": "+string(out))
		return
	}

	samples := [][]byte{
		bytes.Repeat([]byte(`[[2, 3], {"name": "h\u00e9llo"}, {"chain": null}] `), 300),
		{}, // an empty body must still be a stream Python reads
	}
	req := struct {
		Samples [][]byte            `json:"samples"`
		Go      map[string][][]byte `json:"go"`
	}{Samples: samples, Go: map[string][][]byte{}}
	for _, c := range all {
		for _, s := range samples {
			enc, err := c.codec.Append(nil, s)
			if err != nil {
				t.Fatal(err)
			}
			req.Go[c.codec.Mime] = append(req.Go[c.codec.Mime], enc)
		}
	}
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, brokertest.Python, "-c", interopScript)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var resp struct {
		Decoded map[string][][]byte `json:"decoded"`
		Python  map[string][][]byte `json:"python"`
		Missing []string            `json:"missing"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		t.Fatalf("python output %q: %v", raw, err)
	}
	for _, m := range resp.Missing {
		t.Logf("kombu here has no %s (its Python module is not installed): not cross-checked", m)
	}
	for _, c := range all {
		t.Run(c.codec.Name, func(t *testing.T) {
			t.Parallel()
			py, ok := resp.Python[c.codec.Mime]
			if !ok {
				t.Skipf("kombu here has no %s", c.codec.Mime)
			}
			decoded := resp.Decoded[c.codec.Mime]
			if len(py) != len(samples) || len(decoded) != len(samples) {
				t.Fatalf("python answered %d and %d bodies for %d samples", len(py), len(decoded), len(samples))
			}
			for i, sample := range samples {
				if !bytes.Equal(decoded[i], sample) {
					t.Errorf("sample %d: kombu decompressed Go's body to %d bytes, want %d", i, len(decoded[i]), len(sample))
				}
				got, err := c.codec.Decompress(nil, py[i], 0)
				if err != nil {
					t.Errorf("sample %d: decompressing kombu's body: %v", i, err)
				} else if !bytes.Equal(got, sample) {
					t.Errorf("sample %d: kombu's body decompressed to %d bytes, want %d", i, len(got), len(sample))
				}
			}
		})
	}
}
