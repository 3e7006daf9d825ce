package cli

import (
	"os"
	"strconv"
	"strings"
)

// memoryLimit is Go's soft memory limit for a configuration that may hold
// bound bytes: the bound itself, so that the collector works harder as the
// heap nears what the configuration allows instead of letting it grow to
// twice the live data; lowered to 90% of the container's limit (cgroup)
// when that is smaller, so that the process is not killed first. GOMEMLIMIT,
// when set, is Go's own and wins (the caller does not call this then).
func memoryLimit(bound, cgroup int64) (limit int64, from string) {
	limit, from = bound, "configuration"
	if cgroup > 0 && cgroup/10*9 < limit {
		limit, from = cgroup/10*9, "container"
	}
	return limit, from
}

// cgroupMemoryLimit reads the memory limit of the process's cgroup (v2's
// memory.max, else v1's memory.limit_in_bytes under root); 0 when there is
// none.
func cgroupMemoryLimit(root string) int64 {
	for _, name := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(root + "/" + name)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 || v >= 1<<62 { // v1 reports "unlimited" as a huge number
			return 0
		}
		return v
	}
	return 0
}
