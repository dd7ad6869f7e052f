/* Wine 8 (Debian 12) lacks bcryptprimitives.dll, whose ProcessPrng the Rust standard library
   uses for random numbers on Windows; this stand-in, used only to run the Windows build under
   Wine in CI, forwards to RtlGenRandom (SystemFunction036). Never shipped. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG len);
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n; len -= n;
    }
    return TRUE;
}
