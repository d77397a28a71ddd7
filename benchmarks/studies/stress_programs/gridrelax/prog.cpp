// Cells reachable from the top-left corner, by sweeping the grid until nothing changes.
#include <cstdio>
#include <vector>
#include <string>
#include <iostream>
int main() {
    int n, m;
    std::cin >> n >> m;
    std::vector<std::string> g(n);
    for (auto& r : g) std::cin >> r;
    std::vector<std::vector<char>> seen(n, std::vector<char>(m, 0));
    if (g[0][0] == '#') { puts("0"); return 0; }
    seen[0][0] = 1;
    for (bool changed = true; changed;) {
        changed = false;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++) {
                if (seen[i][j] || g[i][j] == '#') continue;
                if ((i && seen[i - 1][j]) || (j && seen[i][j - 1]) || (i + 1 < n && seen[i + 1][j]) ||
                    (j + 1 < m && seen[i][j + 1])) { seen[i][j] = 1; changed = true; }
            }
    }
    int count = 0;
    for (auto& r : seen) for (char c : r) count += c;
    printf("%d\n", count);
}
