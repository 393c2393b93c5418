/* Read floor of a classic pcap file: frames every record (reads its 16-byte header and the
 * first byte of its frame) and does nothing else, either through read() into a 2 MiB buffer
 * or through a read-only mmap of the whole file. It shows what reading alone costs on this
 * machine, before any decoding (BENCHMARKS.md, flows section).
 *
 *   cc -O2 -o /tmp/read_floor benches/flows/read_floor.c
 *   /tmp/read_floor FILE 3     # read() in 2 MiB pieces
 *   /tmp/read_floor FILE 0     # mmap;  1: mmap + MAP_POPULATE;  2: mmap + MADV_HUGEPAGE
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: %s FILE MODE (0-2 mmap, 3 read)\n", argv[0]);
		return 2;
	}
	int fd = open(argv[1], O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		perror(argv[1]);
		return 1;
	}
	int mode = atoi(argv[2]);
	uint64_t n = 0, sum = 0;
	double t0 = now();
	if (mode < 3) {
		int flags = MAP_PRIVATE | (mode == 1 ? MAP_POPULATE : 0);
		uint8_t *p = mmap(NULL, st.st_size, PROT_READ, flags, fd, 0);
		if (p == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		if (mode == 2)
			madvise(p, st.st_size, MADV_HUGEPAGE);
		madvise(p, st.st_size, MADV_SEQUENTIAL);
		size_t off = 24;
		while (off + 16 <= (size_t)st.st_size) {
			uint32_t caplen;
			memcpy(&caplen, p + off + 8, 4);
			if (off + 16 + caplen > (size_t)st.st_size)
				break;
			sum += p[off + 16];
			off += 16 + caplen;
			n++;
		}
	} else {
		size_t cap = 2 << 20, have = 0, off = 24;
		uint8_t *buf = malloc(cap);
		for (;;) {
			ssize_t r = read(fd, buf + have, cap - have);
			if (r <= 0)
				break;
			have += r;
			while (off + 16 <= have) {
				uint32_t caplen;
				memcpy(&caplen, buf + off + 8, 4);
				if (16 + (size_t)caplen > cap) {
					fprintf(stderr, "record larger than the buffer\n");
					return 1;
				}
				if (off + 16 + caplen > have)
					break;
				sum += buf[off + 16];
				off += 16 + caplen;
				n++;
			}
			memmove(buf, buf + off, have - off);
			have -= off;
			off = 0;
		}
	}
	printf("mode %d: %llu records in %.3f s (checksum %llu)\n", mode, (unsigned long long)n,
	       now() - t0, (unsigned long long)sum);
	return 0;
}
