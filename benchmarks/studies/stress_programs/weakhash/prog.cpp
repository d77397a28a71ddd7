// Distinct values through a chained hash table keyed by x mod 1024.
#include <cstdio>
#include <vector>
int main() {
    int n;
    if (scanf("%d", &n) != 1) return 0;
    std::vector<std::vector<long long>> bucket(1024);
    int distinct = 0;
    for (int i = 0; i < n; i++) {
        long long x;
        scanf("%lld", &x);
        auto& b = bucket[x % 1024];
        bool seen = false;
        for (long long y : b) seen |= y == x;
        if (!seen) { b.push_back(x); distinct++; }
    }
    printf("%d\n", distinct);
}
