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

// CARE32 is CARE16 for the thirty-two bytes in Y0, with AVX2.
#define CARE32 \
	VPCMPEQB Y2, Y0, Y4 \
	VPCMPEQB Y3, Y0, Y5 \
	VPOR Y5, Y4, Y4 \
	VPCMPGTB Y1, Y0, Y0 \
	VPANDN Y0, Y4, Y4 \
	VPMOVMSKB Y4, AX \
	NOTL AX

// func copyPlain(dst, s []byte) int
//
// Whole vectors are stored, so dst must have room for len(s)+32 bytes;
// bytes past the returned count are scratch. A string shorter than sixteen
// bytes that ends near a page boundary is left to the caller (0 returned).
TEXT ·copyPlain(SB), NOSPLIT, $0-56
	MOVQ dst_base+0(FP), DI
	MOVQ s_base+24(FP), SI
	MOVQ s_len+32(FP), BX
	XORQ DX, DX
	TESTQ BX, BX
	JZ   cdone
	CMPQ BX, $32
	JB   csse
	CMPB ·hasAVX2(SB), $1
	JEQ  cavx2

csse:
	MOVOU plainConsts<>+0x00(SB), X1
	MOVOU plainConsts<>+0x20(SB), X2
	MOVOU plainConsts<>+0x40(SB), X3
	CMPQ BX, $16
	JB   cshort

cloop16:
	MOVOU (SI)(DX*1), X0
	MOVOU X0, (DI)(DX*1)
	CARE16
	TESTL AX, AX
	JNZ  cfound
	ADDQ $16, DX
	LEAQ 16(DX), CX
	CMPQ CX, BX
	JBE  cloop16
	CMPQ DX, BX
	JEQ  cdone

	// The last sixteen bytes again, stored over identical copies.
	LEAQ -16(BX), DX
	MOVOU (SI)(DX*1), X0
	MOVOU X0, (DI)(DX*1)
	CARE16
	TESTL AX, AX
	JNZ  cfound
	MOVQ BX, DX
	JMP  cdone

cshort:
	MOVQ SI, CX
	ANDQ $0xfff, CX
	CMPQ CX, $0xff0
	JA   cdone
	MOVOU (SI), X0
	MOVOU X0, (DI)
	CARE16
	MOVL BX, CX
	MOVL $1, R8
	SHLL CX, R8
	DECL R8
	ANDL R8, AX
	JNZ  cfound
	MOVQ BX, DX
	JMP  cdone

cavx2:
	VMOVDQU plainConsts<>+0x00(SB), Y1
	VMOVDQU plainConsts<>+0x20(SB), Y2
	VMOVDQU plainConsts<>+0x40(SB), Y3

cloop32:
	VMOVDQU (SI)(DX*1), Y0
	VMOVDQU Y0, (DI)(DX*1)
	CARE32
	TESTL AX, AX
	JNZ  cfound32
	ADDQ $32, DX
	LEAQ 32(DX), CX
	CMPQ CX, BX
	JBE  cloop32
	CMPQ DX, BX
	JEQ  cdone32

	LEAQ -32(BX), DX
	VMOVDQU (SI)(DX*1), Y0
	VMOVDQU Y0, (DI)(DX*1)
	CARE32
	TESTL AX, AX
	JNZ  cfound32
	MOVQ BX, DX

cdone32:
	VZEROUPPER

cdone:
	MOVQ DX, ret+48(FP)
	RET

cfound32:
	VZEROUPPER

cfound:
	BSFL AX, AX
	ADDQ AX, DX
	MOVQ DX, ret+48(FP)
	RET
