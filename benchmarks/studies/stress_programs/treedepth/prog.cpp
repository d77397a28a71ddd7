// Sum of node depths in a tree rooted at 1: parents by BFS, then each node climbs to the root.
#include <cstdio>
#include <vector>
int main() {
    int n;
    if (scanf("%d", &n) != 1) return 0;
    std::vector<std::vector<int>> adj(n + 1);
    for (int i = 1; i < n; i++) { int u, v; scanf("%d %d", &u, &v); adj[u].push_back(v); adj[v].push_back(u); }
    std::vector<int> parent(n + 1, 0), order{1};
    parent[1] = -1;
    for (size_t k = 0; k < order.size(); k++)
        for (int w : adj[order[k]]) if (!parent[w]) { parent[w] = order[k]; order.push_back(w); }
    long long sum = 0;
    for (int v = 2; v <= n; v++)
        for (int x = v; parent[x] != -1; x = parent[x]) sum++;
    printf("%lld\n", sum);
}
