// Sorts with a Lomuto quicksort that takes the last element as pivot; prints a checksum.
#include <cstdio>
#include <vector>
static std::vector<long long> a;
static void sort(int lo, int hi) {
    while (lo < hi) {
        long long p = a[hi];
        int i = lo;
        for (int j = lo; j < hi; j++)
            if (a[j] < p) { long long t = a[i]; a[i] = a[j]; a[j] = t; i++; }
        long long t = a[i]; a[i] = a[hi]; a[hi] = t;
        if (i - lo < hi - i) { sort(lo, i - 1); lo = i + 1; } else { sort(i + 1, hi); hi = i - 1; }
    }
}
int main() {
    int n;
    if (scanf("%d", &n) != 1) return 0;
    a.resize(n);
    for (auto& x : a) scanf("%lld", &x);
    sort(0, n - 1);
    long long h = 0;
    for (int i = 0; i < n; i++) h = h * 31 + a[i];
    printf("%lld\n", h);
}
