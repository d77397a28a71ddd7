// n m (1 <= n, m <= 300), then n rows of m characters, each '.' or '#'.
#include <iostream>
#include <string>
int main() {
    int n, m;
    if (!(std::cin >> n >> m) || n < 1 || m < 1 || n > 300 || m > 300) return 1;
    for (int i = 0; i < n; i++) {
        std::string r;
        if (!(std::cin >> r) || (int)r.size() != m) return 1;
        for (char c : r) if (c != '.' && c != '#') return 1;
    }
    std::string rest;
    return std::cin >> rest ? 1 : 0;
}
