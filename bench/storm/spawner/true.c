/*
 * true: the storm's benign program, a static binary that exits 0 with no
 * C library, no dynamic loader and no page touched but its one code page.
 * On a small paravirtual VM /bin/true's dynamic loading (mmaps and page
 * faults, each a trap to the hypervisor) caps a spawner near 400 execs/s;
 * this one reaches several times that, so the daemon, not the exec, is what
 * the storm measures. Its audit records are those of any exec (SYSCALL,
 * EXECVE, CWD, PATH, PROCTITLE, EOE) less the loader's PATH record.
 */
#if defined(__x86_64__)
__asm__(".globl _start\n_start:\n\tmov $60, %eax\n\txor %edi, %edi\n\tsyscall\n");
#elif defined(__aarch64__)
__asm__(".globl _start\n_start:\n\tmov x0, #0\n\tmov x8, #93\n\tsvc #0\n");
#else
#error "true.c: add _start for this architecture"
#endif
