package httpapi

// FastServed counts the requests the connection loop answered.
func FastServed() int64 { return fastServed.Load() }
