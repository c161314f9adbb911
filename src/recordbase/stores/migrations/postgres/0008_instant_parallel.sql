-- rb_instant catches bad input with an exception block, which opens a subtransaction: that
-- changes the transaction state, so PostgreSQL requires PARALLEL UNSAFE (a parallel worker, or
-- a leader in parallel mode, fails with "cannot start subtransactions during a parallel
-- operation"). Found building a date-time index over 1M rows with a parallel index build.
ALTER FUNCTION rb_instant(text) PARALLEL UNSAFE;
