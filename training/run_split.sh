# Sourced by the magnetic-tile recipes (retrain_mtd.sh, retrain_mtd_seg.sh): checks SPLIT_BY and
# that a run folder already made is not reused under the other split (resuming or re-exporting it
# would mix a model trained on one split with the other split's test tiles).
#   check_run_split NAME RUN SPLIT_BY MADE   (MADE: the file whose presence says RUN holds a split)
check_run_split() {
  local name=$1 run=$2 split_by=$3 made_file=$4 made
  case $split_by in
    number | part) ;;
    *) echo "$name: SPLIT_BY must be number or part, not '$split_by'" >&2; exit 2 ;;
  esac
  [[ -e $made_file ]] || return 0
  made=$(cat "$run/data/split_by" 2>/dev/null || echo number)  # folders made before the marker: number
  if [[ $made != "$split_by" ]]; then
    echo "$name: $run was made with SPLIT_BY=$made, not $split_by: use another RUN" >&2
    exit 2
  fi
}
