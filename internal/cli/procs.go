package cli

// ioHeadroom is how many Go processors to run with, from the GOMAXPROCS
// environment variable and the count the runtime chose (the CPUs, or a
// container's CPU limit): two more than that count unless the variable is
// set. A goroutine in a file write or read holds its processor until the
// runtime notices, some microseconds to milliseconds later, and Sluice's
// flush threads spend much of their time in multi-megabyte writes. On a
// 2-CPU machine, two flush threads writing files left a CPU idle: the
// forward-to-file benchmark ran at 131-138% CPU with 2 and 146-153% with
// 3, 4 or 8, and up to 12% faster (docs/benchmarks.md).
func ioHeadroom(env string, chosen int) (procs int, raised bool) {
	if env != "" {
		return chosen, false
	}
	return chosen + 2, true
}
