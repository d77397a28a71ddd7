// n m (2 <= n <= 50000, 1 <= m <= 100000), then m edges u v: 1 <= u, v <= n, no loops or repeats.
#include <cstdio>
#include <set>
#include <utility>
int main() {
    int n, m;
    if (scanf("%d %d", &n, &m) != 2 || n < 2 || n > 50000 || m < 1 || m > 100000) return 1;
    std::set<std::pair<int, int>> seen;
    for (int i = 0; i < m; i++) {
        int u, v;
        if (scanf("%d %d", &u, &v) != 2 || u < 1 || v < 1 || u > n || v > n || u == v) return 1;
        if (!seen.insert({u < v ? u : v, u < v ? v : u}).second) return 1;
    }
    char c;
    return scanf(" %c", &c) == 1 ? 1 : 0;
}
