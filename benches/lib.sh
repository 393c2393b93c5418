# Shared helpers for the benchmark scripts: run a command several times under /usr/bin/time -v
# and print the median wall time and the largest peak RSS.
# usage: measure RUNS LABEL -- CMD [ARGS...]   (stdout of CMD is discarded)
# sets MEASURE_SECS (median wall seconds) and MEASURE_RSS_KB (max peak RSS in KiB)
measure() {
  local runs=$1 label=$2; shift 3
  local times=() rss=0 t m f
  f=$(mktemp)
  for _ in $(seq "$runs"); do
    /usr/bin/time -v "$@" >/dev/null 2>"$f" || { echo "FAILED: $label" >&2; tail -5 "$f" >&2; }
    t=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$f" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    m=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$f")
    times+=("$t")
    [ "$m" -gt "$rss" ] && rss=$m
  done
  rm -f "$f"
  MEASURE_SECS=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  MEASURE_RSS_KB=$rss
}
