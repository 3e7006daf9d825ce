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

// func plainPairs(dst, src []byte, n int) (written, read, pairs int)
//
// See plain_amd64.go. Registers: DI and SI are the output and input
// after the last whole pair, R8 the end of dst, R9 and R10 the ends of
// src's length and capacity, DX the pairs done; R11 to R13, BX and CX hold
// the pair being read.
TEXT ·plainPairs(SB), NOSPLIT, $0-80
	MOVQ dst_base+0(FP), DI
	MOVQ dst_len+8(FP), R8
	ADDQ DI, R8
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), R9
	ADDQ SI, R9
	MOVQ src_cap+40(FP), R10
	ADDQ SI, R10
	XORQ DX, DX
	MOVOU plainConsts<>+0x00(SB), X1
	MOVOU plainConsts<>+0x20(SB), X2
	MOVOU plainConsts<>+0x40(SB), X3

ppair:
	CMPQ DX, n+48(FP)
	JAE  pdone

	// The key: a fixstr, its bytes from R12, BX of them.
	CMPQ SI, R9
	JAE  pdone
	MOVBLZX (SI), AX
	LEAL -0xa0(AX), BX
	CMPL BX, $0x1f
	JA   pdone
	LEAQ 1(SI), R12

	// The value: a fixstr or str8, its bytes from R13, CX of them.
	LEAQ (R12)(BX*1), R13
	CMPQ R13, R9
	JAE  pdone
	MOVBLZX (R13), AX
	LEAL -0xa0(AX), CX
	CMPL CX, $0x1f
	JBE  pfix
	CMPL AX, $0xd9
	JNE  pdone
	LEAQ 1(R13), AX
	CMPQ AX, R9
	JAE  pdone
	MOVBLZX 1(R13), CX
	ADDQ $2, R13
	JMP  phave

pfix:
	INCQ R13

phave:
	LEAQ (R13)(CX*1), AX
	CMPQ AX, R9
	JA   pdone

	// Whole vectors read from the value stay inside src's capacity
	// (those from the key end before the value's).
	ADDQ $16, AX
	CMPQ AX, R10
	JA   pdone

	// Room for ,"key":"value", the value's every byte escaped, and a
	// vector past its end.
	LEAQ 22(DI)(BX*1), AX
	LEAQ (AX)(CX*2), AX
	CMPQ AX, R8
	JA   pdone

	MOVQ DI, R11
	TESTQ DX, DX
	JZ   pnocomma
	MOVB $0x2c, (R11) // ,
	INCQ R11

pnocomma:
	MOVB $0x22, (R11) // "
	INCQ R11

	// The key, sixteen bytes a step (whole vectors: up to fifteen bytes
	// past its end are read and written), R14 the offset in it. Any byte
	// that needs care ends the run before this pair.
	XORQ R14, R14

pkey:
	CMPQ R14, BX
	JAE  pkeyok
	MOVOU (R12)(R14*1), X0
	MOVOU X0, (R11)(R14*1)
	CARE16
	ADDQ $16, R14
	TESTL AX, AX
	JZ   pkey
	BSFL AX, AX
	LEAQ -16(R14)(AX*1), AX
	CMPQ AX, BX
	JB   pdone
	JMP  pkey

pkeyok:
	ADDQ BX, R11
	MOVB $0x22, (R11)  // "
	MOVB $0x3a, 1(R11) // :
	MOVB $0x22, 2(R11) // "
	ADDQ $3, R11

	// The value, as the key but with quotes and backslashes escaped: R14
	// is the offset in the value and R12 the escapes so far, so that a
	// byte goes R12 bytes further on in dst than in the value.
	XORQ R14, R14
	XORQ R12, R12

pval:
	CMPQ R14, CX
	JAE  pvalok
	MOVOU (R13)(R14*1), X0
	LEAQ (R11)(R12*1), AX
	MOVOU X0, (AX)(R14*1)
	CARE16
	TESTL AX, AX
	JZ   pvalnext
	BSFL AX, AX
	ADDQ R14, AX
	CMPQ AX, CX
	JAE  pvalnext
	MOVBLZX (R13)(AX*1), BX
	CMPL BX, $0x22 // "
	JEQ  pesc
	CMPL BX, $0x5c // \
	JNE  pdone

pesc:
	// The byte at AX in the value is stored after a backslash, and the
	// copy goes on after it.
	LEAQ 1(AX), R14
	ADDQ R12, AX
	MOVB $0x5c, (R11)(AX*1)
	MOVB BX, 1(R11)(AX*1)
	INCQ R12
	JMP  pval

pvalnext:
	ADDQ $16, R14
	JMP  pval

pvalok:
	ADDQ CX, R11
	ADDQ R12, R11
	MOVB $0x22, (R11) // "
	LEAQ 1(R11), DI
	LEAQ (R13)(CX*1), SI
	INCQ DX
	JMP  ppair

pdone:
	MOVQ dst_base+0(FP), AX
	SUBQ AX, DI
	MOVQ DI, written+56(FP)
	MOVQ src_base+24(FP), AX
	SUBQ AX, SI
	MOVQ SI, read+64(FP)
	MOVQ DX, pairs+72(FP)
	RET
