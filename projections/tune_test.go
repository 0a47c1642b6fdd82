package projections

import (
	"os"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable/block"
)

// LINE_BENCH_PEBBLE adjusts the views' Pebble options in benchmarks:
// comma-separated name=value pairs (exploration only).
func init() {
	spec := os.Getenv("LINE_BENCH_PEBBLE")
	if spec == "" {
		return
	}
	tunePebble = func(o *pebble.Options) {
		for _, kv := range strings.Split(spec, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "mem":
				o.MemTableSize = uint64(n) << 20
			case "memn":
				o.MemTableStopWritesThreshold = int(n)
			case "l0c":
				o.L0CompactionThreshold = int(n)
			case "l0s":
				o.L0StopWritesThreshold = int(n)
			case "lbase":
				o.LBaseMaxBytes = n << 20
			case "target":
				o.TargetFileSizes[0] = n << 20
			case "mult":
				o.Experimental.LevelMultiplier = int(n)
			case "fmv":
				if v == "newest" {
					o.FormatMajorVersion = pebble.FormatNewest
				} else {
					o.FormatMajorVersion = pebble.FormatMajorVersion(n)
				}
			case "comp":
				var prof *block.CompressionProfile
				switch v {
				case "none":
					prof = block.NoCompression
				case "minlz":
					prof = block.MinLZCompression
				case "fastest":
					prof = block.FastestCompression
				default:
					prof = block.SnappyCompression
				}
				for i := range o.Levels {
					o.Levels[i].Compression = func() *block.CompressionProfile { return prof }
				}
			case "compbottom":
				for i := range o.Levels[:len(o.Levels)-1] {
					o.Levels[i].Compression = func() *block.CompressionProfile { return block.NoCompression }
				}
			}
		}
	}
}
