package unsafeconv

import "unsafe"

// String returns b as a string without copying. The caller must not modify
// b while the string is in use.
func String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Bytes returns s as a byte slice without copying. The slice must not be
// written to.
func Bytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
