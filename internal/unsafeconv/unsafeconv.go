// Package unsafeconv holds the project's only unsafe string/byte conversions.
//
// Both functions return views: the result aliases the argument's memory.
// String's result is valid only while b is neither modified nor reused;
// Bytes' result must never be written to.
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
