#!/bin/bash
# Seed 002's HTTP source under Debian's wrk: one event per POST from 64 keep-alive connections
# (docs/benchmarks.md, issue 20). Sluice's CPU per request comes from /proc/PID/stat before and after.
# usage: bench/http-seed002.sh BINARY null|seed [SECONDS]
#   null: seed 002's http source (its regexp <parse>) into a null output
#   seed: seed 002's configuration as written (file buffer, chunk keys path,time, s3 gzip) into MinIO
#         (needs a minio binary on PATH or at ~/go/bin/minio; the hour's chunks are not due during the run)
set -e
bin=$1; mode=$2; secs=${3:-8}
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/http-seed002.XXXX)
cd "$dir"
cat > post.lua <<'LUA'
wrk.method = "POST"
wrk.body = 'customer-17/events payload line {"k":1,"user":"u-123","action":"click","ms":42}'
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA
port=18888
if [ "$mode" = null ]; then
  sed -n '/<source>/,/<\/source>/p' "$repo/internal/engine/testdata/k8s-s3.conf" | sed "s/port 8888/port $port\n  bind 127.0.0.1/" > sluice.conf
  printf '<match **>\n  @type null\n</match>\n' >> sluice.conf
else
  minio=$(command -v minio || echo "$HOME/go/bin/minio")
  MINIO_ROOT_USER=bench MINIO_ROOT_PASSWORD=benchsecret "$minio" server --address 127.0.0.1:19000 "$dir/minio" > minio.log 2>&1 & miniopid=$!
  trap 'kill $miniopid 2>/dev/null || true' EXIT
  for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:19000/minio/health/live && break; sleep 0.2; done
  sed "s/port 8888/port $port\n  bind 127.0.0.1/; s#path /var/log/fluent/s3#path $dir/buffer#" "$repo/internal/engine/testdata/k8s-s3.conf" > sluice.conf
  export AWS_ENDPOINT_URL_S3=http://127.0.0.1:19000 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret AWS_EC2_METADATA_DISABLED=true
fi
"$bin" -c sluice.conf > sluice.log 2>&1 & pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
tck=$(getconf CLK_TCK)
read -r u0 s0 < <(awk '{print $14, $15}' /proc/$pid/stat)
out=$(wrk -t2 -c64 -d"${secs}s" -s post.lua "http://127.0.0.1:$port/app.events")
read -r u1 s1 < <(awk '{print $14, $15}' /proc/$pid/stat)
reqs=$(echo "$out" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
non2xx=$(echo "$out" | sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p')
rss=$(awk '/VmHWM/{print $2/1024}' /proc/$pid/status)
us=$(echo "(($u1 - $u0) + ($s1 - $s0)) * 1000000 / $tck / $reqs" | bc -l)
uus=$(echo "($u1 - $u0) * 1000000 / $tck / $reqs" | bc -l)
sus=$(echo "($s1 - $s0) * 1000000 / $tck / $reqs" | bc -l)
printf '%s %s: %d requests/s, %.1f µs CPU per request (%.1f user + %.1f system), non-2xx %s, peak RSS %d MiB\n' \
  "$(basename "$bin")" "$mode" $((reqs / secs)) "$us" "$uus" "$sus" "${non2xx:-0}" "${rss%.*}"
kill $pid; wait $pid 2>/dev/null || true
cd / && rm -rf "$dir"
