// TidepoolJdbc: several JDBC connections, one per thread, each running
// parameterised SELECT / INSERT / batch INSERT in transactions many times
// (and some autocommit statements and rollbacks), for
// tests/integration/test_drivers_jdbc.py. With prepareThreshold=1 in the URL
// pgjdbc uses named server-side prepared statements (S_1, S_2 ... in every
// connection) from their first execution, parsed once per connection and
// then only bound.
//
// usage: java -cp DIR:postgresql.jar TidepoolJdbc URL USER PASSWORD THREADS ITERATIONS TAG
// Prints one "thread N pids=..." line per thread and, when every check held,
// "OK rows=R serverPrepared=true|false distinctPids=P maxPidsPerThread=M"; exits 0.
// On any failure prints the exception and exits 1.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

public class TidepoolJdbc {
    static final AtomicLong committedRows = new AtomicLong();
    static final AtomicBoolean serverPrepared = new AtomicBoolean(true);

    static void check(boolean cond, String what) {
        if (!cond) throw new IllegalStateException("check failed: " + what);
    }

    static long scalar(PreparedStatement ps) throws SQLException {
        try (ResultSet rs = ps.executeQuery()) {
            check(rs.next(), "a row");
            long v = rs.getLong(1);
            check(!rs.next(), "one row");
            return v;
        }
    }

    static Set<Integer> work(String url, String user, String password, int id, int iterations, String tag)
            throws SQLException {
        Set<Integer> pids = new TreeSet<>();
        try (Connection conn = DriverManager.getConnection(url, user, password)) {
            conn.setAutoCommit(false);
            PreparedStatement ins = conn.prepareStatement(
                "INSERT INTO jdbc_items (tag, thread, k, label) VALUES (?, ?, ?, ?)");
            PreparedStatement count = conn.prepareStatement(
                "SELECT count(*) FROM jdbc_items WHERE tag = ? AND thread = ? AND label = ?");
            PreparedStatement pid = conn.prepareStatement("SELECT pg_backend_pid()");
            long mine = 0;
            for (int k = 0; k < iterations; k++) {
                // A transaction: insert, read back, commit.
                ins.setString(1, tag); ins.setInt(2, id); ins.setInt(3, k); ins.setString(4, "kept");
                check(ins.executeUpdate() == 1, "insert count");
                count.setString(1, tag); count.setInt(2, id); count.setString(3, "kept");
                check(scalar(count) == mine + 1, "thread " + id + " sees its " + (mine + 1) + " rows");
                int p1 = (int) scalar(pid);
                // A statement prepared anew each time (pgjdbc's statement cache
                // gives it the same server-side name).
                try (PreparedStatement sum = conn.prepareStatement("SELECT ?::int + ?::int")) {
                    sum.setInt(1, id); sum.setInt(2, k);
                    check(scalar(sum) == id + k, "sum");
                    if (k > 0 && !((org.postgresql.PGStatement) sum).isUseServerPrepare())
                        serverPrepared.set(false);
                }
                check((int) scalar(pid) == p1, "one backend for the whole transaction");
                pids.add(p1);
                conn.commit();
                mine++;
                committedRows.incrementAndGet();

                if (k % 5 == 4) {
                    // Rolled back.
                    ins.setString(1, tag); ins.setInt(2, id); ins.setInt(3, k); ins.setString(4, "rolled back");
                    ins.executeUpdate();
                    conn.rollback();
                }
                if (k % 10 == 9) {
                    // A batch in a transaction.
                    for (int j = 0; j < 5; j++) {
                        ins.setString(1, tag); ins.setInt(2, id); ins.setInt(3, -j - 1); ins.setString(4, "batch");
                        ins.addBatch();
                    }
                    int[] n = ins.executeBatch();
                    check(n.length == 5, "batch size");
                    conn.commit();
                    committedRows.addAndGet(5);
                    // Autocommit: every statement its own transaction.
                    conn.setAutoCommit(true);
                    count.setString(1, tag); count.setInt(2, id); count.setString(3, "batch");
                    check(scalar(count) == (k / 10 + 1) * 5, "batch rows");
                    pids.add((int) scalar(pid));
                    conn.setAutoCommit(false);
                }
            }
            if (!((org.postgresql.PGStatement) ins).isUseServerPrepare()) serverPrepared.set(false);
            ins.close();
            count.close();
            pid.close();
        }
        return pids;
    }

    public static void main(String[] args) throws Exception {
        String url = args[0], user = args[1], password = args[2];
        int threads = Integer.parseInt(args[3]), iterations = Integer.parseInt(args[4]);
        String tag = args[5];
        List<Thread> ts = new ArrayList<>();
        List<Set<Integer>> results = new ArrayList<>();
        List<Throwable> errors = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            final int id = i;
            results.add(null);
            Thread t = new Thread(() -> {
                try {
                    Set<Integer> p = work(url, user, password, id, iterations, tag);
                    synchronized (results) { results.set(id, p); }
                } catch (Throwable e) {
                    synchronized (errors) { errors.add(e); }
                    System.err.println("thread " + id + " failed:");
                    e.printStackTrace();
                }
            });
            ts.add(t);
            t.start();
        }
        for (Thread t : ts) t.join();
        if (!errors.isEmpty()) {
            System.out.println("FAILED threads=" + errors.size());
            System.exit(1);
        }
        Set<Integer> all = new TreeSet<>();
        int maxPerThread = 0;
        for (int i = 0; i < threads; i++) {
            System.out.println("thread " + i + " pids=" + results.get(i));
            all.addAll(results.get(i));
            maxPerThread = Math.max(maxPerThread, results.get(i).size());
        }
        System.out.println("OK rows=" + committedRows.get()
                           + " serverPrepared=" + serverPrepared.get() + " distinctPids=" + all.size()
                           + " maxPidsPerThread=" + maxPerThread);
        System.exit(0);
    }
}
