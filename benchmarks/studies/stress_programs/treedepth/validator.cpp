// n (2 <= n <= 100000), then n-1 edges u v of a tree on nodes 1..n.
#include <cstdio>
#include <vector>
static std::vector<int> up;
static int find(int x) { while (up[x] != x) x = up[x] = up[up[x]]; return x; }
int main() {
    int n;
    if (scanf("%d", &n) != 1 || n < 2 || n > 100000) return 1;
    up.resize(n + 1);
    for (int i = 0; i <= n; i++) up[i] = i;
    for (int i = 1; i < n; i++) {
        int u, v;
        if (scanf("%d %d", &u, &v) != 2 || u < 1 || v < 1 || u > n || v > n || find(u) == find(v)) return 1;
        up[find(u)] = find(v);
    }
    char c;
    return scanf(" %c", &c) == 1 ? 1 : 0;
}
