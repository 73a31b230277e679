// Package prefetch asks the processor to start loading memory into its
// caches ahead of use, without waiting for it: on amd64 with PREFETCHT0,
// elsewhere not at all (Lines does nothing).
//
// A load that misses the caches stalls the core once the instructions
// behind it fill its window; a prefetch does not, so one issued well
// before the data is needed overlaps the miss with other work. The memory
// broker uses it for the messages its consumers take next (see
// transport/memory's stage).
package prefetch
