package scheduler

// goldenAllocID is AllocID("p1", "e1", 1).
const goldenAllocID = "ynuriulxvlbuciwglx5375jerc"
