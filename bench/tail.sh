#!/bin/bash
# tail → null and tail → file buffer → file, over files written beforehand (docs/benchmarks.md, issue 24):
# MB/s and CPU-seconds per GB of log read, per line size and parser. The files are in the page cache
# (written just before), so the figures are Sluice's reading, splitting and parsing, not the disk's.
# usage: bench/tail.sh SLUICE_BINARY [MIB_PER_RUN]
#   KEEP=1 keeps the work directory
set -e
bin=$1; mib=${2:-512}
work=$(mktemp -d /tmp/tail-bench.XXXX); cd "$work"
trap '[ -n "$KEEP" ] || { cd /; rm -rf "$work"; }' EXIT
cpu() { read -r u s < <(awk '{print $14, $15}' /proc/$1/stat); echo "($u + $s) / $(getconf CLK_TCK)" | bc -l; }
rss() { awk '/VmHWM/{print int($2/1024)}' /proc/$1/status; }

# lines SIZE: a file of MIB MiB of JSON lines of about SIZE bytes (a container's log line shape).
lines() {
  python3 - "$1" "$mib" <<'PY'
import sys
size, mib = int(sys.argv[1]), int(sys.argv[2])
pad = "x" * max(0, size - 80)
with open("logs/app-%d.log" % size, "w") as f:
    n, total = 0, 0
    while total < mib << 20:
        line = '{"log":"GET /api/v1/items/%08d 200 %s","stream":"stdout","time":"2026-12-06T10:00:00Z"}\n' % (n, pad)
        f.write(line); total += len(line); n += 1
print(n)
PY
}

events() { curl -s 127.0.0.1:24231/metrics | awk '/^sluice_input_events_total\{.*type="tail"/{printf "%d\n", $2}'; }
outlines() { cat out/*.log 2>/dev/null | wc -l; }

printf '%-6s %-5s %-12s %10s %8s %10s %10s %8s\n' line parse sink events secs MB/s CPU-s/GB RSS-MiB
for size in 1024 200; do
  rm -rf logs; mkdir logs
  n=$(lines $size)
  bytes=$(stat -c %s logs/app-$size.log)
  for parse in none json; do
    for sink in null file_buffer; do
      rm -rf out buffer tail.pos
      match='@type null'
      if [ $sink = file_buffer ]; then
        match='@type file
  path ./out/events
  append true
  <format>
    @type json
  </format>
  <buffer>
    @type file
    path ./buffer
    flush_mode interval
    flush_interval 1s
    chunk_limit_size 8m
    total_limit_size 2g
    overflow_action block
  </buffer>'
      fi
      cat > run.conf <<CONF
<system>
  log_level warn
</system>
<source>
  @type prometheus
  bind 127.0.0.1
  port 24231
</source>
<source>
  @type tail
  path ./logs/*.log
  pos_file ./tail.pos
  tag app
  read_from_head true
  <parse>
    @type $parse
  </parse>
</source>
<match app>
  $match
</match>
CONF
      t0=$(date +%s.%N)
      "$bin" -c run.conf > run.log 2>&1 & pid=$!
      for _ in $(seq 6000); do
        if [ $sink = null ]; then got=$(events); else got=$(outlines); fi
        [ "${got:-0}" -ge "$n" ] 2>/dev/null && break
        sleep 0.05
      done
      t1=$(date +%s.%N)
      c=$(cpu $pid); r=$(rss $pid)
      kill $pid; wait $pid 2>/dev/null || true
      secs=$(echo "$t1 - $t0" | bc -l)
      printf '%-6s %-5s %-12s %10s %8.2f %10.0f %10.2f %8s\n' $size $parse $sink "${got:-0}/$n" "$secs" \
        "$(echo "$bytes / 1048576 / $secs" | bc -l)" "$(echo "$c / ($bytes / 1073741824)" | bc -l)" "$r"
    done
  done
done
