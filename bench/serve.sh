#!/bin/sh
# serve.sh [MODEL] [EPOCHS]: requests per second and latency of `mrec serve`
# over a model trained on the Amazon Baby data in data/baby (LightGCN by
# default), measured with wrk (apt-get install wrk) at 8 and 200
# connections, each request a different user's top 20. Neither Ducho, Elliot
# nor MMRec serves recommendations, so there is no peer to compare with.
set -eu
cd "$(dirname "$0")/.."
model=${1:-lightgcn}
epochs=${2:-5}
command -v wrk >/dev/null || { echo "serve.sh: wrk not found (apt-get install wrk)"; exit 1; }
[ -x bin/mrec ] || make
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
d=data/baby
./bin/mrec train --data $d/train.tsv,$d/val.tsv,$d/test.tsv --format tsv --model "$model" --epochs "$epochs" \
    --out "$work/run" --save "$work/model" > "$work/train.log"
./bin/mrec serve "$work/model" --port 0 > "$work/serve.log" 2>&1 &
pid=$!
for _ in 1 2 3 4 5 6 7 8 9 10; do grep -q 'on http' "$work/serve.log" && break; sleep 0.5; done
url=$(sed -n 's/.* on \(http[^ ]*\)$/\1/p' "$work/serve.log")
[ -n "$url" ] || { cat "$work/serve.log"; exit 1; }
users=$(wc -l < "$work/model/users.tsv")
cat > "$work/users.lua" <<EOF
local ids = {}
for line in io.lines("$work/model/users.tsv") do ids[#ids + 1] = line:match("\t(.*)") end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/recommend?user=" .. ids[(n % #ids) + 1] .. "&k=20")
end
EOF
echo "mrec serve: $model on Baby ($users users), $(nproc) cores, $(head -1 "$work/serve.log" | sed 's/.*: //')"
for c in 8 200; do
    wrk -t2 -c$c -d10s --latency -s "$work/users.lua" "$url" > "$work/wrk.txt"
    rps=$(sed -n 's/^Requests\/sec: *//p' "$work/wrk.txt")
    p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
    bad=$(sed -n 's/^ *Non-2xx or 3xx responses: *//p' "$work/wrk.txt")
    printf '%4d connections: %10s requests/s, p50 %8s, p99 %8s, errors %s\n' "$c" "$rps" "$p50" "$p99" "${bad:-0}"
done
echo "memory after: $(ps -o rss= -p $pid) KB resident"
