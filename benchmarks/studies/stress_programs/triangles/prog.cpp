// Triangles of a simple graph: for each edge, the common neighbours by a double loop.
#include <cstdio>
#include <vector>
int main() {
    int n, m;
    if (scanf("%d %d", &n, &m) != 2) return 0;
    std::vector<std::vector<int>> adj(n + 1);
    std::vector<std::pair<int, int>> e(m);
    for (auto& [u, v] : e) { scanf("%d %d", &u, &v); adj[u].push_back(v); adj[v].push_back(u); }
    long long t = 0;
    for (auto [u, v] : e)
        for (int x : adj[u])
            for (int y : adj[v]) t += x == y;
    printf("%lld\n", t / 3);
}
