package cli

// ioHeadroom is how many Go processors to run with, from the GOMAXPROCS
// environment variable and the count the runtime chose (the CPUs, or a
// container's CPU limit): one more than that count unless the variable is
// set. A goroutine in a file write or read holds its processor until the
// runtime notices, some microseconds to milliseconds later, and flush
// threads spend much of their time in multi-megabyte writes. Measured on
// 2 CPUs (docs/benchmarks.md): forward to a file through a file buffer ran
// at 117-138% CPU with 2 processors and 132-153% with 3 or more, up to 12%
// faster; message mode, many small reads, was as fast with 3 as with 2 but
// 25% slower with 4, so the headroom is one.
func ioHeadroom(env string, chosen int) (procs int, raised bool) {
	if env != "" {
		return chosen, false
	}
	return chosen + 1, true
}
