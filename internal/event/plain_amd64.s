//go:build amd64 && !purego

#include "textflag.h"

// Thirty-two copies each of 0x1f, '"' and '\\'.
DATA plainConsts<>+0x00(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA plainConsts<>+0x08(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA plainConsts<>+0x10(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA plainConsts<>+0x18(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA plainConsts<>+0x20(SB)/8, $0x2222222222222222
DATA plainConsts<>+0x28(SB)/8, $0x2222222222222222
DATA plainConsts<>+0x30(SB)/8, $0x2222222222222222
DATA plainConsts<>+0x38(SB)/8, $0x2222222222222222
DATA plainConsts<>+0x40(SB)/8, $0x5c5c5c5c5c5c5c5c
DATA plainConsts<>+0x48(SB)/8, $0x5c5c5c5c5c5c5c5c
DATA plainConsts<>+0x50(SB)/8, $0x5c5c5c5c5c5c5c5c
DATA plainConsts<>+0x58(SB)/8, $0x5c5c5c5c5c5c5c5c
GLOBL plainConsts<>(SB), RODATA|NOPTR, $96

// CARE16 leaves in AX a bit for each of the sixteen bytes in X0 that needs
// care. A byte is plain when, as a signed byte, it is above 0x1f (so
// neither a control byte nor non-ASCII) and is neither quote nor backslash.
#define CARE16 \
	MOVOU X0, X4 \
	PCMPEQB X2, X4 \
	MOVOU X0, X5 \
	PCMPEQB X3, X5 \
	POR X5, X4 \
	PCMPGTB X1, X0 \
	PANDN X0, X4 \
	PMOVMSKB X4, AX \
	XORL $0xffff, AX

// func plainPrefix(s []byte) int
TEXT ·plainPrefix(SB), NOSPLIT, $0-32
	MOVQ s_base+0(FP), SI
	MOVQ s_len+8(FP), BX
	TESTQ BX, BX
	JZ   all
	CMPQ BX, $32
	JB   sse
	CMPB ·hasAVX2(SB), $1
	JEQ  avx2

sse:
	MOVOU plainConsts<>+0x00(SB), X1
	MOVOU plainConsts<>+0x20(SB), X2
	MOVOU plainConsts<>+0x40(SB), X3
	CMPQ BX, $16
	JB   short
	XORQ DX, DX

loop16:
	MOVOU (SI)(DX*1), X0
	CARE16
	TESTL AX, AX
	JNZ  found
	ADDQ $16, DX
	LEAQ 16(DX), CX
	CMPQ CX, BX
	JBE  loop16
	CMPQ DX, BX
	JEQ  all

	// The last sixteen bytes, overlapping plain ones already read: the
	// first flag still falls on the first byte that needs care.
	LEAQ -16(BX), DX
	MOVOU (SI)(DX*1), X0
	CARE16
	TESTL AX, AX
	JNZ  found
	JMP  all

short:
	// One load of sixteen bytes from s, or ending at s's end when that
	// would cross into the next page; then only s's own bytes count.
	MOVQ SI, CX
	ANDQ $0xfff, CX
	CMPQ CX, $0xff0
	JA   shortEnd
	MOVOU (SI), X0
	CARE16
	MOVL BX, CX
	MOVL $1, DX
	SHLL CX, DX
	DECL DX
	ANDL DX, AX
	JZ   all
	BSFL AX, AX
	MOVQ AX, ret+24(FP)
	RET

shortEnd:
	MOVOU -16(SI)(BX*1), X0
	CARE16
	MOVL $16, CX
	SUBL BX, CX
	SHRL CX, AX
	JZ   all
	BSFL AX, AX
	MOVQ AX, ret+24(FP)
	RET

avx2:
	VMOVDQU plainConsts<>+0x00(SB), Y1
	VMOVDQU plainConsts<>+0x20(SB), Y2
	VMOVDQU plainConsts<>+0x40(SB), Y3
	XORQ DX, DX

loop32:
	VMOVDQU (SI)(DX*1), Y0
	VPCMPEQB Y2, Y0, Y4
	VPCMPEQB Y3, Y0, Y5
	VPOR Y5, Y4, Y4
	VPCMPGTB Y1, Y0, Y0
	VPANDN Y0, Y4, Y4
	VPMOVMSKB Y4, AX
	NOTL AX
	TESTL AX, AX
	JNZ  found32
	ADDQ $32, DX
	LEAQ 32(DX), CX
	CMPQ CX, BX
	JBE  loop32
	CMPQ DX, BX
	JEQ  all32

	LEAQ -32(BX), DX
	VMOVDQU (SI)(DX*1), Y0
	VPCMPEQB Y2, Y0, Y4
	VPCMPEQB Y3, Y0, Y5
	VPOR Y5, Y4, Y4
	VPCMPGTB Y1, Y0, Y0
	VPANDN Y0, Y4, Y4
	VPMOVMSKB Y4, AX
	NOTL AX
	TESTL AX, AX
	JNZ  found32

all32:
	VZEROUPPER

all:
	MOVQ BX, ret+24(FP)
	RET

found32:
	VZEROUPPER

found:
	BSFL AX, AX
	ADDQ DX, AX
	MOVQ AX, ret+24(FP)
	RET
