// Package unsafeconv holds the project's only unsafe string/byte conversions.
//
// Both functions return views: the result aliases the argument's memory.
// String's result is valid only while b is neither modified nor reused;
// Bytes' result must never be written to.
package unsafeconv
