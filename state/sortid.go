package state

import (
	"cmp"
	"slices"
)

// sortByID sorts items by id. It sorts (id prefix, id, item) triples held
// side by side: most comparisons then read the 8-byte prefixes in the
// triples and never follow a pointer to an item or its id's bytes, which at
// a million items are cache misses (the order is exactly the ids').
func sortByID[T any](items []T, id func(T) string) {
	if len(items) < 2 {
		return
	}
	type keyed struct {
		prefix uint64
		id     string
		item   T
	}
	ks := make([]keyed, len(items))
	for i, it := range items {
		s := id(it)
		ks[i] = keyed{prefix: idPrefixOf(s), id: s, item: it}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := cmp.Compare(a.prefix, b.prefix); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	for i := range ks {
		items[i] = ks[i].item
	}
}

func (a *Alloc) id() string { return a.ID }
func (e *Eval) id() string  { return e.ID }
