/* The accelerator probe's firmware (src/qemu/accel.rs, mod payload), in GNU as syntax: the
 * reference its hand-assembled bytes are checked against. bootrig does not use this file at run
 * time (it builds the image in Rust, so a host needs no assembler); the unit test
 * qemu::accel::payload::tests::whole_image_equals_gnu_as_output assembles it and compares.
 * Rebuild the 64 KiB image by hand with binutils:
 *   as --32 -o kvm-probe.o harness/kvm-probe.S && objcopy -O binary kvm-probe.o kvm-probe.bin
 * The image sits at physical 0xF0000 (QEMU's -bios); the CPU starts at F000:FFF0. It walks the
 * road a kernel does, real mode -> 32-bit protected mode -> 64-bit long mode with paging -> a
 * compute loop, writes one marker byte per stage to the debug console (port 0xE9) and exits QEMU
 * through isa-debug-exit (port 0xF4) with status (0x2A << 1) | 1 = 85. Every byte not written is
 * 0xF4 (hlt), so a stray jump stops instead of running garbage. Keep the two in step. */

        .equ BASE, 0xF0000              /* physical address of image offset 0 */
        .equ REAL16, 0x0000             /* image offsets of the sections */
        .equ PROT32, 0x0040
        .equ LONG64, 0x0100
        .equ GDT, 0x0180
        .equ GDTR, 0x01A0
        .equ RESET_VECTOR, 0xFFF0
        .equ IMAGE_SIZE, 0x10000

        .equ DEBUGCON_PORT, 0xE9
        .equ DEBUG_EXIT_PORT, 0xF4
        .equ EXIT_VALUE, 0x2A
        .equ LOOP_COUNT, 1 << 24        /* ~0.1 s under TCG, ~17 s under the broken nested KVM */

        .equ CODE32, 0x08               /* GDT selectors */
        .equ DATA32, 0x10
        .equ CODE64, 0x18

        .equ PML4, 0x1000               /* page tables in guest RAM, one 4 KiB page each */
        .equ PDPT, 0x2000
        .equ PD, 0x3000

        .equ IA32_EFER, 0xC0000080

        /* Stage markers (Stage::marker). */
        .equ REAL_MODE, 'R'
        .equ PROTECTED_MODE, 'P'
        .equ LONG_MODE, 'L'
        .equ LOOP_DONE, 'C'

        .macro marker stage
        mov $\stage, %al
        out %al, $DEBUGCON_PORT
        .endm

        .text
/* 16-bit real mode, CS base 0xF0000. */
        .code16
        .org REAL16, 0xF4
        cli                             /* no interrupt handlers exist */
        marker REAL_MODE
        lgdtl %cs:GDTR
        mov %cr0, %eax
        or $1, %al                      /* CR0.PE */
        mov %eax, %cr0
        ljmpl $CODE32, $BASE + PROT32   /* loads a 32-bit CS */

/* 32-bit protected mode, flat segments. */
        .code32
        .org PROT32, 0xF4
        mov $DATA32, %eax
        mov %eax, %ds
        mov %eax, %es
        mov %eax, %ss
        marker PROTECTED_MODE
        mov $PML4, %edi                 /* zero PML4, PDPT and PD */
        xor %eax, %eax
        mov $3 * 4096 / 4, %ecx
        rep stosl
        movl $PDPT | 0x3, PML4          /* PML4[0] -> PDPT, present | writable */
        movl $PD | 0x3, PDPT            /* PDPT[0] -> PD */
        movl $0x83, PD                  /* PD[0] -> 2 MiB page at 0 (identity), present | writable | PS */
        mov $PML4, %eax
        mov %eax, %cr3
        mov %cr4, %eax
        or $0x20, %eax                  /* CR4.PAE */
        mov %eax, %cr4
        mov $IA32_EFER, %ecx
        rdmsr
        or $0x100, %eax                 /* EFER.LME */
        wrmsr
        mov %cr0, %eax
        or $0x80000000, %eax            /* CR0.PG: long mode becomes active */
        mov %eax, %cr0
        ljmp $CODE64, $BASE + LONG64    /* loads a 64-bit CS */

/* 64-bit long mode. */
        .code64
        .org LONG64, 0xF4
        marker LONG_MODE
        mov $LOOP_COUNT, %ecx
1:      dec %ecx
        jnz 1b
        marker LOOP_DONE
        mov $EXIT_VALUE, %al
        out %al, $DEBUG_EXIT_PORT       /* QEMU exits */
2:      hlt                             /* not reached */
        jmp 2b

/* The GDT. The accessed bit (type 0x9B/0x93) is preset: the CPU would otherwise write it into this
 * descriptor, i.e. into ROM, and under nested KVM that write never completes. */
        .org GDT, 0xF4
        .quad 0                         /* null */
        .quad 0x00CF9B000000FFFF        /* CODE32: base 0, 4 GiB, D=1 */
        .quad 0x00CF93000000FFFF        /* DATA32: base 0, 4 GiB, writable */
        .quad 0x00AF9B000000FFFF        /* CODE64: L=1 */
        .org GDTR, 0xF4
        .word 4 * 8 - 1                 /* limit */
        .long BASE + GDT                /* base */

/* The reset vector, F000:FFF0. */
        .code16
        .org RESET_VECTOR, 0xF4
        ljmp $0xF000, $REAL16
        .org IMAGE_SIZE, 0xF4
