/*
 * A preload for the User-Mode Linux kernel the harness boots: it lets
 * UML 6.1 run on hosts whose CPUs have more extended register state than
 * that kernel knows (AVX-512, AMX).
 *
 * UML switches its processes' registers with ptrace. It saves and restores
 * the XSAVE area with PTRACE_GETREGSET/PTRACE_SETREGSET(NT_X86_XSTATE) in a
 * buffer of the size it was built for (x87, SSE and AVX). The host kernel
 * accepts a short buffer for GETREGSET but refuses SETREGSET with EFAULT
 * unless the buffer is the host's whole XSAVE size, and UML then panics
 * with "ptrace set fp regs failed, errno = 14" as soon as init starts.
 *
 * This ptrace() passes every call through unchanged except that one: it
 * reads the traced process's whole XSAVE area, lays UML's part over it,
 * keeps the host's state of the components UML's buffer does not hold,
 * and writes back the whole area. Built and preloaded by test/kernel/run.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

/* Offsets in the standard-format XSAVE area. */
#define XSAVE_HEADER 512      /* XSTATE_BV, the components in use */
#define XSAVE_MIN (512 + 64)  /* legacy area and header */

static __thread unsigned char whole[64 * 1024] __attribute__((aligned(64)));

static long raw_ptrace(long req, long pid, void *addr, void *data)
{
	return syscall(SYS_ptrace, req, pid, addr, data);
}

/* set_xstate writes UML's short XSAVE buffer as a whole one; it returns
 * -2 when the short buffer would do (or cannot be helped), so that the
 * caller passes the request through as it is. */
static long set_xstate(pid_t pid, void *addr, struct iovec *in)
{
	struct iovec io = {whole, sizeof(whole)};
	uint64_t host_bv, guest_bv, bv;

	if (in->iov_len < XSAVE_MIN || raw_ptrace(PTRACE_GETREGSET, pid, addr, &io) != 0 || io.iov_len <= in->iov_len)
		return -2;
	memcpy(&host_bv, whole + XSAVE_HEADER, 8);
	memcpy(&guest_bv, (unsigned char *)in->iov_base + XSAVE_HEADER, 8);
	memcpy(whole, in->iov_base, in->iov_len);
	/* x87 and SSE are in the legacy area, which UML's buffer holds; any
	 * other component is UML's if its buffer holds all of it. */
	bv = (guest_bv & 3) | (host_bv & ~(uint64_t)3);
	for (unsigned i = 2; i < 63; i++) {
		unsigned size, offset, ecx, edx;
		uint64_t bit = (uint64_t)1 << i;

		if (!((guest_bv | host_bv) & bit))
			continue;
		__cpuid_count(0xd, i, size, offset, ecx, edx);
		if (size && (uint64_t)offset + size <= in->iov_len)
			bv = (bv & ~bit) | (guest_bv & bit);
	}
	memcpy(whole + XSAVE_HEADER, &bv, 8);
	return raw_ptrace(PTRACE_SETREGSET, pid, addr, &io);
}

long ptrace(enum __ptrace_request request, ...)
{
	va_list ap;
	pid_t pid;
	void *addr, *data;
	long word;

	va_start(ap, request);
	pid = va_arg(ap, pid_t);
	addr = va_arg(ap, void *);
	data = va_arg(ap, void *);
	va_end(ap);

	switch (request) {
	case PTRACE_SETREGSET:
		if ((uintptr_t)addr == NT_X86_XSTATE) {
			long r = set_xstate(pid, addr, data);
			if (r != -2)
				return r;
		}
		break;
	case PTRACE_PEEKTEXT:
	case PTRACE_PEEKDATA:
	case PTRACE_PEEKUSER:
		/* The system call stores the word at data; glibc returns it. */
		errno = 0;
		if (raw_ptrace(request, pid, addr, &word) < 0)
			return -1;
		return word;
	default:
		break;
	}
	return raw_ptrace(request, pid, addr, data);
}
